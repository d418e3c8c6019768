"""KRaft's OpenAPI document against KRaft: the document is valid OpenAPI (openapi-spec-validator),
and every documented operation, called for success and for its documented errors, answers with a
status and body its document allows (openapi-core validates each response).

Usage: openapi_contract.py <base URL> <API token with every scope> <name of a Ready cluster>
                           <API token of an organizer (an admin) with every scope>
"""

import sys
import uuid
from datetime import datetime, timedelta, timezone

import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_spec_validator import validate

base, token, ready, organizer = sys.argv[1:5]
doc = requests.get(f"{base}/api/v1/openapi.json", timeout=30).json()
validate(doc)
api = OpenAPI.from_dict(doc)
documented = {
    (path, method.upper())
    for path, item in doc["paths"].items()
    for method in item
    if method in ("get", "post", "put", "patch", "delete")
}
answered = set()
failures = []


def call(method, path, template, want, body=None, auth=True, as_token=None):
    """Calls `method path`, which must answer `want`, with a response the document allows."""
    headers = {"Authorization": f"Bearer {as_token or token}"} if auth else {}
    request = requests.Request(method, f"{base}{path}", json=body, headers=headers).prepare()
    response = requests.Session().send(request, timeout=60)
    what = f"{method} {path} -> {response.status_code}"
    if response.status_code != want:
        failures.append(f"{what}, expected {want}: {response.text[:300]}")
        return response
    try:
        api.validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(response))
    except Exception as error:  # noqa: BLE001 - every validation error is a failure to report
        failures.append(f"{what}: not as documented: {error!r}"[:600])
        return response
    if 200 <= want < 300:
        answered.add((template, method))
    print(f"  as documented: {what}")
    return response


C = "/api/v1/clusters"
call("GET", "/api/v1/me", "/api/v1/me", 200)
call("GET", "/api/v1/me", "/api/v1/me", 401, auth=False)
call("GET", f"{C}?limit=1", C, 200)
call("GET", f"{C}?limit=0", C, 422)
call("GET", f"{C}?limit=lots", C, 400)
call("POST", C, C, 422, {"name": "Not_A_Name"})
call("POST", C, C, 400, {"name": "x", "unknown": 1})
call("POST", C, C, 201, {"name": "contract"})
one = f"{C}/{{cluster}}"
call("GET", f"{C}/{ready}", one, 200)
call("GET", f"{C}/no-such-cluster", one, 404)
call("PATCH", f"{C}/contract", one, 202, {"servers": 1})
call("PATCH", f"{C}/contract", one, 422, {"servers": 2})
call("GET", f"{C}/{ready}/status", f"{one}/status", 200)
call("GET", f"{C}/no-such-cluster/status", f"{one}/status", 404)
kubeconfigs = f"{one}/kubeconfigs"
issued = call("POST", f"{C}/{ready}/kubeconfigs", kubeconfigs, 201, {"name": "contract", "days": 1})
call("POST", f"{C}/{ready}/kubeconfigs", kubeconfigs, 422, {"name": "contract", "days": 1})
call("GET", f"{C}/{ready}/kubeconfigs?limit=1", kubeconfigs, 200)
if issued.status_code == 201:
    kid = issued.json()["kubeconfig"]["id"]
    call("DELETE", f"{C}/{ready}/kubeconfigs/{kid}", f"{kubeconfigs}/{{kubeconfig}}", 204)
    call("DELETE", f"{C}/{ready}/kubeconfigs/{kid}", f"{kubeconfigs}/{{kubeconfig}}", 404)
call("DELETE", f"{C}/contract", one, 202)
call("DELETE", f"{C}/no-such-cluster", one, 404)

W = "/api/v1/workshops"
at = lambda minutes: (datetime.now(timezone.utc) + timedelta(minutes=minutes)).isoformat()  # noqa: E731
workshop = {"title": "Contract", "starts_at": at(-1), "ends_at": at(60), "seats": 2, "agents": 0}
call("GET", f"{W}?limit=1", W, 200)
call("GET", f"{W}?limit=101", W, 422)
call("POST", W, W, 403, workshop)
call("POST", W, W, 422, dict(workshop, title="", seats=0), as_token=organizer)
call("POST", W, W, 400, dict(workshop, colour="red"), as_token=organizer)
made = call("POST", W, W, 201, workshop, as_token=organizer)
w_one = f"{W}/{{workshop}}"
if made.status_code == 201:
    wid = made.json()["id"]
    call("GET", f"{W}/{wid}", w_one, 200, as_token=organizer)
    call("GET", f"{W}/{wid}", w_one, 404)
    call("PATCH", f"{W}/{wid}", w_one, 200, {"joining_open": False}, as_token=organizer)
    call("PATCH", f"{W}/{wid}", w_one, 422, {"extend_minutes": 0}, as_token=organizer)
    call("GET", f"{W}/{wid}/seats?limit=5", f"{w_one}/seats", 200, as_token=organizer)
    call("GET", f"{W}/{uuid.uuid4()}/seats", f"{w_one}/seats", 404, as_token=organizer)
    call("POST", f"{W}/{wid}/end", f"{w_one}/end", 200, as_token=organizer)
    call("POST", f"{W}/{uuid.uuid4()}/end", f"{w_one}/end", 404, as_token=organizer)
    call("PATCH", f"{W}/{wid}", w_one, 409, {"joining_open": True}, as_token=organizer)

for template, method in sorted(documented - answered):
    failures.append(f"{method} {template} is documented but was never answered successfully")
if failures:
    print("OpenAPI contract failures:\n  " + "\n  ".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"openapi contract: {len(documented)} operations answered as documented")
