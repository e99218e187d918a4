"""What the image process pool runs. A worker imports this module to find the function, so
it stays light: the pipeline and Pillow only, not the service's database, HTTP and event
clients (importing media_service.service costs a new worker seconds, inside the first
upload's timeout)."""

from __future__ import annotations

from media_service.imaging.pipeline import (
    ImageRejected,
    ProcessedImage,
    process_avatar,
    process_image,
)


def process_in_worker(path: str, max_pixels: int) -> ProcessedImage | ImageRejected:
    # Rejections come back as values: exceptions cross the process boundary less reliably.
    try:
        return process_image(path, max_pixels=max_pixels)
    except ImageRejected as exc:
        return exc


def avatar_in_worker(path: str, max_pixels: int) -> ProcessedImage | ImageRejected:
    try:
        return process_avatar(path, max_pixels=max_pixels)
    except ImageRejected as exc:
        return exc
