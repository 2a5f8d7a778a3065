from clinic.middleware import clinics_of


def current_clinic(request):
    user = getattr(request, "user", None)
    return {
        "clinic": getattr(request, "clinic", None),
        "membership": getattr(request, "membership", None),
        "my_clinics": clinics_of(user) if user is not None else [],
    }
