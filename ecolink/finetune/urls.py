from django.urls import path

from ecolink.finetune import job_views, views

app_name = "finetune"
urlpatterns = [
    path("", job_views.job_list, name="list"),
    path("new", views.wizard, name="new"),
    path("new/restart", views.wizard_restart, name="restart"),
    path("<int:pk>", job_views.job_detail, name="detail"),
    path("<int:pk>/status", job_views.job_status, name="status"),
    path("<int:pk>/metrics.json", job_views.job_metrics, name="metrics"),
    path("<int:pk>/tab/<str:tab>", job_views.job_tab, name="tab"),
    path("<int:pk>/<str:action>", job_views.job_action, name="action"),
]
