"""The gallery: every stored image newest first, WebP thumbnails, bulk delete and zip download
(api/gallery.py is its router)."""
