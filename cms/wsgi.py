"""WSGI entry point of the CMS (``cms.wsgi:application``), served by uWSGI on every node."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms.settings")

application = get_wsgi_application()
