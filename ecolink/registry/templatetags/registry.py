"""`{% deploy_panel job %}`: the Deploy panel the job page shows for a registered job."""

from django import template

register = template.Library()


@register.inclusion_tag("registry/partials/panel.html", takes_context=True)
def deploy_panel(context, job):
    from ecolink.registry.views import panel_context

    # The job page shows its own Download link next to the lineage.
    return panel_context(context["request"], job.adapter, embedded=True)
