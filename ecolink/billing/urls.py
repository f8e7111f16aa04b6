from django.urls import path

from ecolink.billing import views

app_name = "billing"
urlpatterns = [
    path("", views.billing, name="billing"),
    path("test-topup", views.test_topup, name="test_topup"),
]
