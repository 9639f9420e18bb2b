"""The CRM sandboxes answer as the published contracts say.

The HubSpot answers are read through hubspot-api-client's generated models (the vendor's own
client pointed at the sandbox), so the sandbox's shapes cannot drift from HubSpot's.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

CLIENT = {"client_id": "sandbox-morket-hubspot", "client_secret": "sandbox-hubspot-secret-0001"}
REDIRECT = "http://localhost/cb"
VERIFIER = "v" * 64


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _authorize(crm, name: str, path: str, **extra: str) -> str:
    query = {"client_id": CLIENT["client_id"], "redirect_uri": REDIRECT, "state": "s1", "response_type": "code",
             "code_challenge": _challenge(VERIFIER), "code_challenge_method": "S256", **extra}  # fmt: skip
    back = crm.consent(f"{crm.url(name)}{path}?{urlencode(query)}")
    found = parse_qs(urlsplit(back).query)
    assert found["state"] == ["s1"]
    return found["code"][0]


def _hubspot_token(crm) -> str:
    code = _authorize(crm, "hubspot", "/oauth/authorize", scope="oauth crm.objects.contacts.write")
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
    resp = crm.http.post(f"{crm.url('hubspot')}/oauth/v1/token", data={**CLIENT, **body})
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def _salesforce(crm) -> tuple[str, dict]:
    code = _authorize(crm, "salesforce", "/services/oauth2/authorize")
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
    resp = crm.http.post(f"{crm.url('salesforce')}/services/oauth2/token", data={**CLIENT, **body})
    token = resp.json()
    assert "expires_in" not in token and token["instance_url"] == crm.url("salesforce")
    return token["instance_url"] + "/services/data/v62.0", {"Authorization": f"Bearer {token['access_token']}"}


@pytest.fixture
def vendor(crm):
    """hubspot-api-client's contacts API pointed at the sandbox with a real OAuth access token."""
    from hubspot.crm.contacts import ApiClient, BasicApi, BatchApi, Configuration, SearchApi

    config = Configuration(host=crm.url("hubspot"))
    config.access_token = _hubspot_token(crm)
    client = ApiClient(config)
    yield {"batch": BatchApi(client), "basic": BasicApi(client), "search": SearchApi(client)}
    client.close()


def test_hubspot_batch_upsert_and_read_through_the_vendor_models(vendor, crm):
    from hubspot.crm.contacts import (
        BatchInputSimplePublicObjectBatchInputUpsert,
        BatchReadInputSimplePublicObjectId,
        BatchResponseSimplePublicObject,
        BatchResponseSimplePublicUpsertObject,
        SimplePublicObjectBatchInputUpsert,
        SimplePublicObjectId,
    )

    people = [("ada@example.com", "Ada"), ("grace@example.com", "Grace")]
    inputs = [
        SimplePublicObjectBatchInputUpsert(id=email, id_property="email", properties={"firstname": first},
                                           object_write_trace_id=f"row-{i}")
        for i, (email, first) in enumerate(people)
    ]  # fmt: skip
    first = vendor["batch"].upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs))
    assert isinstance(first, BatchResponseSimplePublicUpsertObject)
    assert first.status == "COMPLETE" and [r.new for r in first.results] == [True, True]
    assert [r.object_write_trace_id for r in first.results] == ["row-0", "row-1"]
    # The same keys again, one email in other case: updated, never created twice.
    inputs[0].id = "ADA@example.com"
    inputs[0].properties = {"firstname": "Ada", "lastname": "Lovelace"}
    second = vendor["batch"].upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs))
    assert [r.new for r in second.results] == [False, False]
    assert crm.state("hubspot")["records"]["contacts"] == 2
    read = vendor["batch"].read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id="ada@example.com")], properties=["firstname", "lastname"],
            properties_with_history=[], id_property="email",
        ),
        archived=False,
    )  # fmt: skip
    assert isinstance(read, BatchResponseSimplePublicObject)
    assert read.results[0].properties["lastname"] == "Lovelace"


def test_hubspot_search_list_and_partial_failures_through_the_vendor_models(vendor):
    from hubspot.crm.contacts import (
        BatchInputSimplePublicObjectBatchInputUpsert,
        BatchResponseSimplePublicUpsertObjectWithErrors,
        CollectionResponseSimplePublicObjectWithAssociationsForwardPaging,
        CollectionResponseWithTotalSimplePublicObjectForwardPaging,
        Filter,
        FilterGroup,
        PublicObjectSearchRequest,
        SimplePublicObjectBatchInputUpsert,
    )

    inputs = [
        SimplePublicObjectBatchInputUpsert(
            id=f"p{i}@example.com", id_property="email", properties={"firstname": f"P{i}"}
        )
        for i in range(3)
    ]
    inputs.append(SimplePublicObjectBatchInputUpsert(id="x@example.com", id_property="email", properties={"shoe": "9"}))
    partial = vendor["batch"].upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs))
    assert isinstance(partial, BatchResponseSimplePublicUpsertObjectWithErrors)
    assert partial.num_errors == 1 and partial.errors[0].category == "VALIDATION_ERROR"
    assert partial.errors[0].context == {"ids": ["x@example.com"]} and len(partial.results) == 3
    found = vendor["search"].do_search(
        PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name="lastmodifieddate", operator="GTE", value="0")])],
            sorts=["lastmodifieddate"], properties=["email"], limit=2, after="0",
        )
    )  # fmt: skip
    assert isinstance(found, CollectionResponseWithTotalSimplePublicObjectForwardPaging)
    assert found.total == 3 and len(found.results) == 2 and found.paging.next.after == "2"
    page = vendor["basic"].get_page(limit=2, properties=["email"])
    assert isinstance(page, CollectionResponseSimplePublicObjectWithAssociationsForwardPaging)
    assert [r.properties["email"] for r in page.results] == ["p0@example.com", "p1@example.com"]
    assert page.paging.next.after


def test_hubspot_create_of_an_existing_email_is_a_conflict(vendor):
    from hubspot.crm.contacts import ApiException, SimplePublicObjectInputForCreate

    vendor["basic"].create(SimplePublicObjectInputForCreate(properties={"email": "ada@example.com"}, associations=[]))
    with pytest.raises(ApiException) as refused:
        vendor["basic"].create(
            SimplePublicObjectInputForCreate(properties={"email": "Ada@Example.com"}, associations=[])
        )
    assert refused.value.status == 409 and '"category": "CONFLICT"' in refused.value.body


def test_hubspot_unknown_property_fails_that_input_only_with_207(crm):
    token = _hubspot_token(crm)
    url = f"{crm.url('hubspot')}/crm/v3/objects/contacts/batch/upsert"
    inputs = [{"id": "a@x.com", "idProperty": "email", "properties": {"firstname": "A"}},
              {"id": "b@x.com", "idProperty": "email", "properties": {"shoe_size": "9"},
               "objectWriteTraceId": "r2"}]  # fmt: skip
    resp = crm.http.post(url, json={"inputs": inputs}, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 207
    body = resp.json()
    assert body["numErrors"] == 1 and "shoe_size" in body["errors"][0]["message"]
    assert body["errors"][0]["context"]["objectWriteTraceId"] == ["r2"] and len(body["results"]) == 1
    too_many = [{"id": f"p{i}@x.com", "idProperty": "email", "properties": {}} for i in range(101)]
    resp = crm.http.post(url, json={"inputs": too_many}, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 400 and resp.json()["category"] == "VALIDATION_ERROR"


def test_hubspot_search_and_list_page_through_everything(crm):
    token = _hubspot_token(crm)
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{crm.url('hubspot')}/crm/v3/objects/companies"
    inputs = [{"id": f"c-{i}", "idProperty": "morket_id", "properties": {"name": f"Co {i}"}} for i in range(25)]
    assert crm.http.post(f"{base}/batch/upsert", json={"inputs": inputs}, headers=headers).status_code == 200
    seen, after = [], None
    while True:
        page = crm.http.get(base, params={"limit": 10, **({"after": after} if after else {})}, headers=headers).json()
        seen += [r["properties"]["name"] for r in page["results"]]
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert len(seen) == 25 == len(set(seen))
    search = {"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}],
              "sorts": ["lastmodifieddate"], "limit": 20}  # fmt: skip
    first = crm.http.post(f"{base}/search", json=search, headers=headers).json()
    assert first["total"] == 25 and len(first["results"]) == 20 and first["paging"]["next"]["after"] == "20"


def test_hubspot_ten_second_window_answers_429_with_its_headers(crm):
    token = _hubspot_token(crm)
    crm.configure("hubspot", window_limit=3)
    url = f"{crm.url('hubspot')}/crm/v3/objects/contacts"
    answers = [crm.http.get(url, headers={"Authorization": f"Bearer {token}"}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "3"
    limited = answers[3]
    assert limited.json()["policyName"] == "TEN_SECONDLY_ROLLING" and float(limited.headers["Retry-After"]) > 0
    assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_oauth_checks_pkce_redirect_uri_and_expiry(crm):
    code = _authorize(crm, "hubspot", "/oauth/authorize")
    body = {**CLIENT, "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": "w" * 64}  # fmt: skip
    assert crm.http.post(f"{crm.url('hubspot')}/oauth/v1/token", data=body).status_code == 400
    # The code was used up by the failed attempt, as a real authorization server does.
    body["code_verifier"] = VERIFIER
    assert crm.http.post(f"{crm.url('hubspot')}/oauth/v1/token", data=body).status_code == 400
    crm.configure("hubspot", token_ttl=0)
    token = _hubspot_token(crm)
    resp = crm.http.get(f"{crm.url('hubspot')}/crm/v3/objects/contacts", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401 and resp.json()["subCategory"] == "EXPIRED"


def test_salesforce_collection_upsert_by_external_id(crm):
    base, headers = _salesforce(crm)
    url = f"{base}/composite/sobjects/Account/Morket_Id__c"
    records = [{"attributes": {"type": "Account"}, "Morket_Id__c": "acme.com", "Name": "Acme"},
               {"attributes": {"type": "Account"}, "Morket_Id__c": "globex.com", "Website": "globex.com"},
               {"attributes": {"type": "Account"}, "Morket_Id__c": "dup.com", "Name": "Dup 1"},
               {"attributes": {"type": "Account"}, "Morket_Id__c": "dup.com", "Name": "Dup 2"}]  # fmt: skip
    resp = crm.http.patch(url, json={"allOrNone": False, "records": records}, headers=headers)
    assert resp.status_code == 200 and resp.headers["Sforce-Limit-Info"].startswith("api-usage=")
    results = resp.json()
    assert results[0]["success"] and results[0]["created"] and results[0]["id"].startswith("001")
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert [r["errors"][0]["statusCode"] for r in results[2:]] == ["DUPLICATE_EXTERNAL_ID"] * 2
    again = crm.http.patch(url, json={"allOrNone": False, "records": records[:1]}, headers=headers).json()
    assert again[0]["created"] is False and again[0]["id"] == results[0]["id"]
    rolled = crm.http.patch(url, json={"allOrNone": True, "records": records[:2]}, headers=headers).json()
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert crm.state("salesforce")["records"]["Account"] == 1
    over = crm.http.patch(url, json={"records": records[:1] * 201}, headers=headers)
    assert over.status_code == 400 and over.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_salesforce_query_pages_with_next_records_url(crm):
    base, headers = _salesforce(crm)
    crm.configure("salesforce", query_batch=4)
    records = [
        {"attributes": {"type": "Contact"}, "Morket_Id__c": f"p{i}", "LastName": f"Person {i}"} for i in range(10)
    ]
    crm.http.patch(f"{base}/composite/sobjects/Contact/Morket_Id__c", json={"records": records}, headers=headers)
    soql = (
        "SELECT Id, LastName, LastModifiedDate FROM Contact "
        "WHERE LastModifiedDate > 2020-01-01T00:00:00Z ORDER BY LastModifiedDate"
    )
    page = crm.http.get(f"{base}/query", params={"q": soql}, headers=headers).json()
    names = [r["LastName"] for r in page["records"]]
    while not page["done"]:
        page = crm.http.get(crm.url("salesforce") + page["nextRecordsUrl"], headers=headers).json()
        names += [r["LastName"] for r in page["records"]]
    assert sorted(names) == sorted(f"Person {i}" for i in range(10))
    bad = crm.http.get(f"{base}/query", params={"q": "SELECT Shoe FROM Contact"}, headers=headers)
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_FIELD"


def test_salesforce_daily_limit_and_expired_session(crm):
    base, headers = _salesforce(crm)
    crm.configure("salesforce", daily_limit=2, used=2)
    over = crm.http.get(f"{base}/sobjects/Lead/describe", headers=headers)
    assert over.status_code == 403 and over.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert over.headers["Sforce-Limit-Info"] == "api-usage=2/2"
    crm.expire("salesforce")
    expired = crm.http.get(f"{base}/sobjects/Lead/describe", headers=headers)
    assert expired.status_code == 401 and expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_consent_deny_redirects_with_access_denied(crm):
    query = urlencode({"client_id": CLIENT["client_id"], "redirect_uri": REDIRECT, "state": "s9"})
    back = crm.consent(f"{crm.url('salesforce')}/services/oauth2/authorize?{query}", decision="deny")
    assert parse_qs(urlsplit(back).query) == {
        "error": ["access_denied"],
        "error_description": ["end-user denied authorization"],
        "state": ["s9"],
    }
    assert isinstance(crm.http, httpx.Client)


def test_salesforce_single_record_upsert_by_external_id(crm):
    base, headers = _salesforce(crm)
    url = f"{base}/sobjects/Lead/Morket_Id__c/lead-1"
    created = crm.http.patch(url, json={"LastName": "Hopper", "Company": "Navy"}, headers=headers)
    assert created.status_code == 201 and created.json()["created"] is True and created.json()["id"].startswith("00Q")
    updated = crm.http.patch(url, json={"Title": "Rear Admiral"}, headers=headers)
    assert updated.status_code == 200 and updated.json() == {**created.json(), "created": False}
    missing = crm.http.patch(f"{base}/sobjects/Lead/Morket_Id__c/lead-2", json={"LastName": "X"}, headers=headers)
    assert missing.status_code == 400 and missing.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    only = crm.http.patch(f"{base}/sobjects/Lead/Morket_Id__c/lead-3?updateOnly=true", json={}, headers=headers)
    assert only.status_code == 404
    assert crm.state("salesforce")["records"]["Lead"] == 1
