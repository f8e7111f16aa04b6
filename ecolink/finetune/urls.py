from django.urls import path

from ecolink.finetune.views import jobs, wizard

app_name = "finetune"
urlpatterns = [
    path("", jobs.job_list, name="list"),
    path("new", wizard.wizard, name="new"),
    path("new/restart", wizard.wizard_restart, name="restart"),
    path("<int:pk>", jobs.job_detail, name="detail"),
    path("<int:pk>/status", jobs.job_status, name="status"),
    path("<int:pk>/metrics.json", jobs.job_metrics, name="metrics"),
    path("<int:pk>/tab/<str:tab>", jobs.job_tab, name="tab"),
    path("<int:pk>/<str:action>", jobs.job_action, name="action"),
]
