"""Schemathesis hooks for the classifier API: `SCHEMATHESIS_HOOKS=image_classifier.st_hooks`."""

from image_classifier.testing import schemathesis_images

schemathesis_images()
