from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from ecolink.datasets.models import Dataset
from ecolink.datasets.uploads import SizeLimitedUploadHandler
from tests.datasets.builders import jsonl, rows_of, upload, validated
from tests.factories import OrganizationFactory

F = Dataset.Format
S = Dataset.Status


def test_the_list_shows_only_the_orgs_datasets_with_a_train_button_on_ready_ones(org, logged_in):
    ready = validated(org, jsonl(rows_of(F.OPENAI)), name="Support chats")
    invalid = validated(org, b"", "empty.jsonl", name="Broken one")
    validated(OrganizationFactory(), jsonl(rows_of(F.TEXT)), name="Someone else's")

    page = logged_in.get(reverse("datasets:list")).content.decode()
    assert "Support chats" in page and "Broken one" in page
    assert "Someone else" not in page
    assert "Ready to train" in page
    assert "OpenAI chat" in page
    assert f'href="/fine-tune/new?dataset={ready.pk}"' in page
    assert f"/fine-tune/new?dataset={invalid.pk}" not in page
    assert "The file is empty." in page


def test_another_orgs_dataset_is_404_everywhere(logged_in):
    foreign = validated(OrganizationFactory(), jsonl(rows_of(F.TEXT)))
    for name in ("detail", "delete", "preview_csv"):
        assert logged_in.get(reverse(f"datasets:{name}", args=[foreign.pk])).status_code == 404
    for name in ("delete", "revalidate"):
        assert logged_in.post(reverse(f"datasets:{name}", args=[foreign.pk])).status_code == 404
    assert Dataset.objects.filter(pk=foreign.pk).exists()


def test_pages_need_login(client):
    response = client.get(reverse("datasets:list"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_the_list_polls_while_a_dataset_is_validating_and_stops_when_settled(org, logged_in):
    dataset = upload(org, jsonl(rows_of(F.TEXT)))
    page = logged_in.get(reverse("datasets:list")).content.decode()
    assert "every 2s" in page
    assert "Uploaded…" in page

    partial = logged_in.get(reverse("datasets:list"), HTTP_HX_REQUEST="true").content.decode()
    assert partial.startswith('<div id="dataset-table"')
    assert "every 2s" in partial

    from ecolink.datasets.services import dataset_validate

    dataset_validate(dataset_id=dataset.pk)
    partial = logged_in.get(reverse("datasets:list"), HTTP_HX_REQUEST="true").content.decode()
    assert "every 2s" not in partial
    assert "Ready to train" in partial


def test_the_polling_partial_keeps_a_fixed_number_of_queries(
    org, logged_in, django_assert_max_num_queries
):
    for i in range(5):
        upload(org, jsonl(rows_of(F.TEXT)), name=f"d{i}")
    with django_assert_max_num_queries(8):
        logged_in.get(reverse("datasets:list"), HTTP_HX_REQUEST="true")
    for i in range(5, 15):
        upload(org, jsonl(rows_of(F.TEXT)), name=f"d{i}")
    with django_assert_max_num_queries(8):
        logged_in.get(reverse("datasets:list"), HTTP_HX_REQUEST="true")


def test_the_detail_page_shows_the_report_and_a_safe_preview(org, logged_in):
    rows = rows_of(F.TEXT)
    rows[0] = {"text": "<script>alert('x')</script> and more"}
    dataset = validated(org, jsonl(rows))
    page = logged_in.get(reverse("datasets:detail", args=[dataset.pk])).content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert "Median (p50)" in page
    assert dataset.content_hash in page
    assert "hx-trigger" not in page.split('id="dataset-report"')[1].split(">")[0]


def test_the_detail_page_polls_until_validation_settles(org, logged_in):
    dataset = upload(org, jsonl(rows_of(F.TEXT)))
    page = logged_in.get(reverse("datasets:detail", args=[dataset.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in page
    partial = logged_in.get(
        reverse("datasets:detail", args=[dataset.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert partial.startswith('<div id="dataset-report"')


def test_an_invalid_dataset_lists_its_errors_with_line_numbers(org, logged_in):
    lines = jsonl(rows_of(F.TEXT)).splitlines(True)
    lines[6] = b"not json\n"
    dataset = validated(org, b"".join(lines))
    page = logged_in.get(reverse("datasets:detail", args=[dataset.pk])).content.decode()
    assert "line 7" in page
    assert "invalid JSON" in page
    assert "Validate again" in page


def upload_post(client, content, name="data.jsonl", **fields):
    return client.post(
        reverse("datasets:upload"),
        {"file": SimpleUploadedFile(name, content), "format": "auto", **fields},
    )


def test_uploading_through_the_page_creates_a_dataset_and_queues_validation(
    logged_in, user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload_post(logged_in, jsonl(rows_of(F.TEXT)), name="Chats")
    assert response.status_code == 302
    dataset = Dataset.objects.get()
    assert dataset.uploaded_by == user
    assert dataset.status == S.UPLOADED
    assert len(callbacks) == 1


def test_uploading_with_htmx_returns_a_fresh_form_and_triggers_the_table(logged_in):
    response = logged_in.post(
        reverse("datasets:upload"),
        {"file": SimpleUploadedFile("d.jsonl", jsonl(rows_of(F.TEXT))), "format": "auto"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert response["HX-Trigger"] == "datasets-changed"
    assert "validating it now" in response.content.decode()


def test_an_upload_with_a_declared_size_over_the_limit_is_refused_unread(logged_in, settings):
    settings.DATASET_MAX_UPLOAD_BYTES = 10_000
    response = upload_post(logged_in, b"x" * 200_000, HTTP_HX_REQUEST="true")
    assert response.status_code == 413
    assert "larger than the 9.8 KB upload limit" in response.content.decode()
    assert not Dataset.objects.exists()


def test_an_upload_over_the_limit_is_stopped_at_the_first_chunk_past_it(logged_in, settings):
    # Declared size within the slack, file over the limit: the handler stops it mid-stream.
    settings.DATASET_MAX_UPLOAD_BYTES = 10_000
    response = upload_post(logged_in, b"x" * 20_000)
    assert response.status_code == 413
    assert not Dataset.objects.exists()


def test_the_handler_refuses_an_oversized_body_without_reading_it():
    class Unreadable:
        def read(self, *args):
            raise AssertionError("the body was read")

    handler = SizeLimitedUploadHandler(max_bytes=1000)
    post, files = handler.handle_raw_input(Unreadable(), {}, 10**9, b"b")
    assert handler.refused
    assert not post and not files


def test_a_form_error_re_renders_the_form(logged_in):
    response = logged_in.post(reverse("datasets:upload"), {"format": "auto"})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_delete_asks_for_confirmation_then_deletes(org, logged_in):
    dataset = validated(org, jsonl(rows_of(F.TEXT)), name="Old data")
    confirm = logged_in.get(reverse("datasets:delete", args=[dataset.pk]))
    assert "Delete Old data?" in confirm.content.decode()
    assert Dataset.objects.filter(pk=dataset.pk).exists()

    response = logged_in.post(reverse("datasets:delete", args=[dataset.pk]))
    assert response.status_code == 302
    assert not Dataset.objects.filter(pk=dataset.pk).exists()


def test_revalidate_from_the_detail_page(org, logged_in, django_capture_on_commit_callbacks):
    rows = [{"q": r["prompt"], "a": r["completion"]} for r in rows_of(F.PROMPT_COMPLETION)]
    dataset = validated(org, jsonl(rows))
    with django_capture_on_commit_callbacks(execute=False):
        response = logged_in.post(
            reverse("datasets:revalidate", args=[dataset.pk]),
            {"format": F.PROMPT_COMPLETION, "prompt_column": "q", "answer_column": "a"},
        )
    assert response.status_code == 302
    dataset.refresh_from_db()
    assert dataset.status == S.UPLOADED
    assert (dataset.prompt_column, dataset.answer_column) == ("q", "a")


def test_nav_links_to_datasets(logged_in):
    page = logged_in.get(reverse("home")).content.decode()
    assert 'href="/datasets/"' in page
