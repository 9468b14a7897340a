"""Import the classes that the workshop's lab folders provide, named by settings."""

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string


def import_lab_class(setting_name: str, dotted_path: str) -> type:
    """Import ``dotted_path``, the value of ``settings.<setting_name>``."""
    try:
        return import_string(dotted_path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"settings.{setting_name} is {dotted_path!r}, which cannot be imported ({exc}). "
            "It lives in the workshop's lab folder (labs/01-stateful/ or "
            "solutions/01-stateful/): that folder must be on the Python path (PYTHONPATH)."
        ) from exc
