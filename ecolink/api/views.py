"""The API keys settings page: create (the key is shown once), list, revoke."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ecolink.accounts.scoping import current_organization, org_queryset
from ecolink.api.keys import api_key_create, api_key_revoke
from ecolink.api.models import ApiKey


@login_required
def key_list(request):
    """The organization's keys; after a create, the new key once, never again."""
    context = {
        "keys": org_queryset(request, ApiKey).select_related("created_by"),
        "new_key": request.session.pop("new_api_key", None),
    }
    return render(request, "api/keys.html", context)


@login_required
@require_POST
def key_create(request):
    org = current_organization(request)
    if org is None:
        messages.error(request, "You belong to no organization.")
        return redirect("apikeys:list")
    _, plain = api_key_create(
        organization=org, name=request.POST.get("name", "").strip(), created_by=request.user
    )
    # Carried to the next page in the session once (post/redirect/get), then dropped.
    request.session["new_api_key"] = plain
    return redirect("apikeys:list")


@login_required
@require_POST
def key_revoke(request, pk: int):
    org = current_organization(request)
    if org is not None and api_key_revoke(key_id=pk, organization_id=org.pk):
        messages.success(request, "The key is revoked: requests with it now get 401.")
    return redirect("apikeys:list")
