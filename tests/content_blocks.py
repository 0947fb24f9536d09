"""Content blocks for tests: images with real headers (pixels are not needed: only the header says a
size), PDFs with a given number of pages, tools."""
from __future__ import annotations

import base64
import struct


def png(width: int, height: int) -> str:
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", width, height)
    return base64.b64encode(header + b"\x08\x02\x00\x00\x00" + b"\x00" * 64).decode()


def jpeg(width: int, height: int) -> str:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x00" * 9
    return base64.b64encode(b"\xff\xd8" + app0 + sof + b"\xff\xd9").decode()


def pdf(pages: int) -> str:
    body = b"%PDF-1.4\n" + b"".join(b"%d 0 obj << /Type /Page >> endobj\n" % (i + 3) for i in range(pages))
    return base64.b64encode(body + b"2 0 obj << /Type /Pages /Count %d >> endobj\n%%%%EOF\n" % pages).decode()


def image(data: str = None, url: str = None, media_type: str = "image/png") -> dict:
    source = {"type": "url", "url": url} if url else {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "image", "source": source}


def pdf_document(pages: int) -> dict:
    return {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf(pages)}}


WEATHER_TOOL = {"name": "get_weather", "description": "The weather in a city.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
