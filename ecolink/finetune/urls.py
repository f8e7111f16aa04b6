from django.urls import path

from ecolink.finetune import views

app_name = "finetune"
urlpatterns = [
    path("", views.job_list, name="list"),
    path("new", views.wizard, name="new"),
    path("new/restart", views.wizard_restart, name="restart"),
    path("<int:pk>", views.job_detail, name="detail"),
    path(
        "<int:pk>/<str:action>",
        views.job_action,
        name="action",
    ),
]
