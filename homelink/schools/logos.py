"""A school's logo, as uploaded on the Settings page: checked, then re-encoded.

An upload is a file from the internet, so nothing of it is kept as it came: it must start with
the PNG or JPEG signature, be small (``LOGO_MAX_BYTES``) and of sane dimensions (checked from
the header, before any pixel is decoded: no decompression bomb), and Pillow then decodes it and
writes a new PNG or JPEG, scaled down to at most ``LOGO_BOX``. What is stored is only what Pillow
wrote: no metadata (EXIF with a location, comments), nothing appended after the image, no file
that is also something else (a polyglot). It is served only by ``schools/views.py``, as the
type it was written as, with ``nosniff``; the pages' policy (img-src 'self') does the rest.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from PIL import Image, ImageOps, UnidentifiedImageError

#: The largest upload taken (and the largest logo kept).
LOGO_MAX_BYTES = 200 * 1024
#: An image wider or taller than this is refused before decoding (a logo is never so big).
LOGO_MAX_SIDE = 4000
#: What is kept fits in this box (pixels): ample for a page header and a printed letter.
LOGO_BOX = (800, 400)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"

UNREADABLE = (
    "This image could not be read. Save the logo again as a PNG or JPEG file and upload that."
)


@dataclass(frozen=True)
class Logo:
    """A logo ready to store: the bytes Pillow wrote, their type and size."""

    image: bytes
    content_type: str
    width: int
    height: int


def _format_of(data: bytes) -> str:
    if data.startswith(PNG_SIGNATURE):
        return "PNG"
    if data.startswith(JPEG_SIGNATURE):
        return "JPEG"
    raise ValidationError(
        "A logo must be a PNG or JPEG image, and this file is neither.", code="logo_type"
    )


def logo_clean(data: bytes) -> Logo:
    """The uploaded ``data`` checked and re-encoded, or a ValidationError saying what is wrong
    in words the office can act on."""
    if not data:
        raise ValidationError("This file is empty.", code="logo_empty")
    if len(data) > LOGO_MAX_BYTES:
        raise ValidationError(
            f"A logo can be at most {filesizeformat(LOGO_MAX_BYTES)}; this file is "
            f"{filesizeformat(len(data))}. Save it smaller (a few hundred pixels wide is plenty).",
            code="logo_size",
        )
    fmt = _format_of(data)
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as probe:
            width, height = probe.size
            if not (0 < width <= LOGO_MAX_SIDE and 0 < height <= LOGO_MAX_SIDE):
                raise ValidationError(
                    f"This image is {width} by {height} pixels; a logo can be at most "
                    f"{LOGO_MAX_SIDE} pixels each way.",
                    code="logo_dimensions",
                )
            probe.verify()
        with Image.open(io.BytesIO(data), formats=[fmt]) as opened:
            opened.load()
            # A phone's photo says which way up it is in EXIF, which is not kept.
            image = ImageOps.exif_transpose(opened)
            image.thumbnail(LOGO_BOX)
            out = io.BytesIO()
            if fmt == "PNG":
                keeps_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
                image = image.convert("RGBA" if keeps_alpha else "RGB")
                image.save(out, "PNG", optimize=True)
            else:
                image.convert("RGB").save(out, "JPEG", quality=90, optimize=True)
            size = image.size
    except ValidationError:
        raise
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        raise ValidationError(UNREADABLE, code="logo_unreadable") from None
    written = out.getvalue()
    if len(written) > LOGO_MAX_BYTES:
        raise ValidationError(
            "This logo is too detailed to keep small: save it with fewer colours, or as a JPEG.",
            code="logo_size",
        )
    return Logo(
        image=written,
        content_type="image/png" if fmt == "PNG" else "image/jpeg",
        width=size[0],
        height=size[1],
    )
