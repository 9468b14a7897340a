from django.apps import AppConfig


class SignageConfig(AppConfig):
    name = "cms.signage"
    verbose_name = "Digital signage"

    def ready(self):
        from . import signals  # noqa: F401  (connects the login/logout audit receivers)
