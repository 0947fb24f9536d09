"""The tooling's rooms: every folder of dev/ is a package that says what it is for, imported by name from the
project's root, never put on sys.path; no module of the product (app.py, chalicelib/), dev/ or tests/ passes
600 lines; and app.py, the table of contents, registers every route family of chalicelib/routes/."""
from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 600


def python_files(*folders: str):
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *folders], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / name for name in listed if name.endswith(".py") and (ROOT / name).exists()]


def edits_sys_path(tree: ast.AST) -> bool:
    """`sys.path.insert(...)`, `sys.path.append(...)`, `sys.path[...] = ...` or `sys.path = ...` anywhere."""
    def is_sys_path(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                and node.value.id == "sys")

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and is_sys_path(node.func.value):
            return True
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(is_sys_path(t) or (isinstance(t, ast.Subscript) and is_sys_path(t.value)) for t in targets):
                return True
    return False


@pytest.mark.parametrize("source, edits", [
    ("import sys\nsys.path.insert(0, 'dev')", True),
    ("import sys\nsys.path.append('dev')", True),
    ("import sys\nsys.path[:0] = ['dev']", True),
    ("import sys\nsys.path += ['dev']", True),
    ("import sys\nprint(sys.path[0])", False),
    ("from dev.stack import local_stack", False),
])
def test_a_sys_path_edit_is_recognised(source, edits):
    assert edits_sys_path(ast.parse(source)) is edits


def test_nothing_in_dev_or_tests_edits_sys_path():
    found = [str(p.relative_to(ROOT)) for p in python_files("dev", "tests") if edits_sys_path(ast.parse(p.read_text()))]
    assert found == [], "import the tooling as packages (pytest.ini's pythonpath puts the root first)"


def test_every_folder_of_dev_is_a_package_saying_what_it_is_for():
    folders = [ROOT / "dev"] + [p for p in (ROOT / "dev").iterdir() if p.is_dir() and p.name != "__pycache__"]
    for folder in folders:
        init = folder / "__init__.py"
        assert init.exists(), f"{folder.relative_to(ROOT)} is not a package"
        assert (ast.get_docstring(ast.parse(init.read_text())) or "").strip(), f"{init.relative_to(ROOT)} says nothing"


def test_no_module_of_the_product_dev_or_tests_passes_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in python_files("app.py", "chalicelib", "dev", "tests")
            if (n := len(p.read_text().splitlines())) > LIMIT}
    assert long == {}, f"over {LIMIT} lines: split by section or concern"


def test_app_registers_every_route_family():
    """A family module app.py does not register would leave its routes out of the API without an error."""
    from app import app

    families = {p.stem for p in (ROOT / "chalicelib" / "routes").glob("*.py")
                if p.stem not in ("__init__", "authorizers")}
    registered = {entry.view_function.__module__.rsplit(".", 1)[-1] for methods in app.routes.values()
                  for entry in methods.values()}
    assert families and registered == families, f"registered {sorted(registered)} of {sorted(families)}"


def test_every_lambda_handler_of_the_app_is_found_in_app_py():
    """Lambda runs each function as `app.<name>` (the template's handlers): the authorizers, defined on a
    blueprint in chalicelib/routes/authorizers.py, are found there because app.py names them."""
    import app as app_module

    app = app_module.app
    handlers = [a.handler_string for a in app.builtin_auth_handlers] + [
        f.handler_string for f in app.pure_lambda_functions] + [e.handler_string for e in app.event_sources]
    assert {"app.tenant_auth", "app.operator_auth", "app.tenant_request_auth"} <= set(handlers)
    for handler in handlers:
        module, name = handler.split(".")
        assert module == "app" and callable(getattr(app_module, name, None)), handler
