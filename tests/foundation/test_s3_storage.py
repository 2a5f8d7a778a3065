"""Photos on S3-compatible storage, against a real local S3 server (moto's, in a subprocess)."""

import socket
import subprocess
import sys
import time

import boto3
import pytest
from django.urls import reverse

from clinic.models import Role
from tests import factories

pytestmark = pytest.mark.services
BUCKET = "trichotrack-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_listening(port: int, process, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the S3 server exited at start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)  # polling a socket that is not open yet; there is no event to await
    raise TimeoutError("the S3 server did not start listening")


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_listening(port, process)
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3_storage(settings, s3_endpoint):
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": BUCKET, "endpoint_url": s3_endpoint, "region_name": "us-east-1", "access_key": "test",
        "secret_key": "test", "default_acl": "private", "querystring_auth": True, "file_overwrite": False}}}
    yield boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                       aws_secret_access_key="test")


def test_photos_are_stored_privately_in_the_bucket_and_served_through_the_app(world, login, s3_storage):
    photo = factories.make_photo(world.visit_a, data=factories.png_bytes(seed=11))
    key = f"clinics/{world.clinic_a.id}/photos/{photo.id}.png"
    assert photo.file.name == key
    stored = s3_storage.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert stored.startswith(b"\x89PNG")
    grants = s3_storage.get_object_acl(Bucket=BUCKET, Key=key)["Grants"]
    assert all("AllUsers" not in str(grant.get("Grantee", {})) for grant in grants)
    response = login(world.users[Role.CLINICIAN]).get(reverse("photo_file", args=[world.clinic_a.slug, photo.id]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == stored
