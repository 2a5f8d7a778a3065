"""Small formatting filters for the clinician workspace (change, significance, percent)."""

from django import template

register = template.Library()


@register.filter
def signed(value, decimals=1):
    """+3.2 / −3.2 with a real minus sign, as printed in clinical reports."""
    if value is None:
        return "—"
    decimals = int(decimals)
    if decimals == 0 and abs(float(value)) < 1:
        decimals = 1  # "−0%" would hide a small change
    text = f"{abs(float(value)):.{decimals}f}"
    return ("+" if value > 0 else "−" if value < 0 else "±") + text


@register.filter
def number(value, decimals=1):
    if value is None:
        return "—"
    return f"{float(value):,.{int(decimals)}f}"


@register.filter
def percent(fraction, decimals=0):
    if fraction is None:
        return "—"
    return f"{float(fraction) * 100:.{int(decimals)}f}%"


@register.filter
def change_class(change, better_up=True):
    """sig-good / sig-bad when the change exceeds its uncertainty, else noise."""
    if not change:
        return "na"
    if not change.get("significant"):
        return "noise"
    up = (change.get("change_pct") or 0) > 0
    return "sig-good" if up == bool(better_up) else "sig-bad"


@register.filter
def get(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def person(user):
    """A user's name as printed on records; "—" when the user is unknown or was deleted."""
    if user is None:
        return "—"
    return user.get_full_name() or user.username
