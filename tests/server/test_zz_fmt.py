def test_fmt(gantry):
    a = gantry.user()
    for v in ["tomorrow", "2027-01-01", "2027-01-01T00:00:00", "2026-13-45T00:00:00Z"]:
        r = a.session.post("/tokens", json={"name": "x", "scopes": ["read"], "expires_at": v}, validate=False)
        print(v, r.status_code, r.json.get("code"), r.json.get("errors"))
    ws = gantry.workspace(a)
    for v in ["yesterday", "2027-01-01", "2027-01-01T00:00:00"]:
        r = a.session.get(f"/workspaces/{ws['id']}/audit-log", query={"from": v}, validate=False)
        print(v, r.status_code, r.json.get("code"))
    r = a.session.post(f"/workspaces/{ws['id']}/api-keys", json={"name": "x", "expires_at": "soon"}, validate=False)
    print(r.status_code, r.json.get("code"))
    r = a.session.post(f"/workspaces/{ws['id']}/members", json={"email": "not-an-email", "role": "viewer"}, validate=False)
    print(r.status_code, r.json.get("code"))
