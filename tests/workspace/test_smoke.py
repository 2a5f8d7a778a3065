from django.urls import reverse


def test_it_renders_the_workspace_pages(history, login):
    client = login(history.users["clinician"])
    slug = history.clinic_a.slug
    for url in [reverse("patient_detail", args=[slug, history.patient_a.id]),
                reverse("visit_detail", args=[slug, history.visits[-1].id]),
                reverse("compare", args=[slug, history.patient_a.id])]:
        response = client.get(url)
        assert response.status_code == 200, url
