"""What the uploads API answers."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Upload(BaseModel):
    """A stored input image; jobs name it by ``id``."""

    id: str = Field(..., description="sha256 (hex) of the stored PNG: the same pixels always get the same id.")
    width: int = Field(..., description="Width in pixels, after EXIF orientation.")
    height: int = Field(..., description="Height in pixels, after EXIF orientation.")
    url: str = Field(..., description="Where the stored image is served (GET), relative to the gateway.")
