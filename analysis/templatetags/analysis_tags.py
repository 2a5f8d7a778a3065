"""{% analysis_status visit %}: the visit's analysis panel with live badges (templates/analysis/_status.html)."""

from django import template

from analysis import selectors

register = template.Library()


@register.inclusion_tag("analysis/_status.html", takes_context=True)
def analysis_status(context, visit, compact=False):
    membership = context.get("membership")
    return {
        "visit": visit,
        "status": selectors.visit_status(visit),
        "clinic": context.get("clinic"),
        "can_retry": bool(membership and membership.is_care_team),
        "compact": compact,
        "csrf_token": context.get("csrf_token"),
        "request": context.get("request"),
    }
