from django.contrib.auth import views as auth_views
from django.urls import path

from . import health, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("screens/", views.screen_list, name="screen_list"),
    path("screens/<int:screen_id>/", views.screen_edit, name="screen_edit"),
    path("screens/<int:screen_id>/delete/", views.screen_delete, name="screen_delete"),
    path("playlists/", views.playlist_list, name="playlist_list"),
    path("audit/", views.audit_report, name="audit_report"),
    path("audit/report.json", views.audit_report_json, name="audit_report_json"),
    path("crm/sync/", views.crm_sync, name="crm_sync"),
    path("healthz/live", health.live, name="health_live"),
    path("healthz/ready", health.ready, name="health_ready"),
    path("healthz/slow", health.slow, name="health_slow"),
]
