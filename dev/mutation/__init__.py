"""Mutation testing of the modules that decide money, limits and identity (`make mutation`, `python -m dev.mutation`).

    runner.py          picks mutants, finds their covering tests, runs them, reports the score
    ops.py             the mutation operators (an AST walk; nothing is written to a source file)
    plugin.py          the pytest side, loaded into the pytest processes the runner starts
    equivalent.txt     mutants no test can tell from the original, each with its reason
"""
