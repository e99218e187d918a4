"""Why an upload is not an image we accept, each reason with its HTTP status."""

from typing import ClassVar


class ImageRejected(Exception):
    """An upload that is not an acceptable image; the message is the problem detail."""

    status: ClassVar[int] = 422
    title: ClassVar[str] = "Image rejected"

    @property
    def detail(self) -> str:
        """The human-readable reason, safe to show to the client."""
        return str(self)


class UnsupportedImage(ImageRejected):
    """Not a JPEG, PNG, WebP or HEIC image."""

    status = 415
    title = "Unsupported image type"


class ImageTooLarge(ImageRejected):
    """More pixels than the limit allows."""

    status = 413
    title = "Image too large"


class CorruptImage(ImageRejected):
    """Claims to be a supported image but does not decode."""

    status = 422
    title = "Corrupt image"


class ImageOutOfProportion(ImageRejected):
    """So long and thin that its variants could not keep its aspect ratio as JPEG."""

    status = 422
    title = "Image rejected"
