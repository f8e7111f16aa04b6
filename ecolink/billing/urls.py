from django.urls import path

from ecolink.billing import views

app_name = "billing"
urlpatterns = [
    path("", views.billing, name="billing"),
    path("jobs/<int:job_id>", views.job_statement, name="job_statement"),
    path("test-topup", views.test_topup, name="test_topup"),
    path("checkout", views.checkout, name="checkout"),
    path("checkout/success", views.checkout_success, name="checkout_success"),
    path("stripe/webhook", views.stripe_webhook, name="stripe_webhook"),
]
