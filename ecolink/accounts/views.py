from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ecolink.accounts.forms import SignupForm
from ecolink.accounts.scoping import organizations_for_user
from ecolink.accounts.services import user_signup


def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = user_signup(**form.cleaned_data)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome to EcoLink. Your workspace has $5.00 of credit.")
        return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
@require_POST
def switch_organization(request, org_id: int):
    org = get_object_or_404(organizations_for_user(request.user), pk=org_id)
    request.session["org_id"] = org.pk
    messages.info(request, f"Now working in {org.name}.")
    return redirect(request.POST.get("next") or "home")
