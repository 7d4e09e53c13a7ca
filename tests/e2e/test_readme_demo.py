"""The README's demo line, run as written with curl against both flavours."""

import json
import shutil
import subprocess

import pytest

EXPECTED = {"response": "GET md-hello=world request=hello query=666"}


@pytest.mark.parametrize("flavour", ["filter", "native"])
def test_readme_curl_line(envoy_factory, flavour):
    """curl 'http://127.0.0.1:<port>/api/v1/echo/hello/get?query=666' -H 'MD-hello: world'"""
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is not installed (Debian: apt-get install curl)", pytrace=False)
    envoy = envoy_factory(flavour)
    url = f"http://127.0.0.1:{envoy.listen_port}/api/v1/echo/hello/get?query=666"
    done = subprocess.run([curl, "-sS", "--max-time", "10", "-w", "\n%{http_code} %{content_type}", url,
                           "-H", "MD-hello: world"], capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 0, done.stderr
    body, _, status_line = done.stdout.rpartition("\n")
    assert status_line == "200 application/json", done.stdout
    assert json.loads(body) == EXPECTED
    # The compact form the README prints.
    assert body == '{"response":"GET md-hello=world request=hello query=666"}'
