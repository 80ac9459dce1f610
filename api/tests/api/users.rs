//! The HTTP suite, run identically against SQLite, MariaDB and PostgreSQL.

use serde_json::{json, Value};

use crate::helpers::{assert_problem, TestApp};

/// Generate one `#[tokio::test]` per backend for each scenario function.
macro_rules! for_all_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() {
                if let Some(app) = crate::helpers::spawn_app(crate::helpers::TestBackend::Sqlite).await {
                    super::$name(app).await
                }
            } )*
        }
        mod mariadb {
            $( #[tokio::test] async fn $name() {
                if let Some(app) = crate::helpers::spawn_app(crate::helpers::TestBackend::MySql).await {
                    super::$name(app).await
                }
            } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() {
                if let Some(app) = crate::helpers::spawn_app(crate::helpers::TestBackend::Postgres).await {
                    super::$name(app).await
                }
            } )*
        }
    };
}

for_all_backends!(
    crud_roundtrip,
    create_normalises_and_sets_location,
    duplicate_email_is_409,
    unknown_id_is_404,
    validation_errors_have_field_errors,
    missing_fields_are_reported,
    patch_validates_and_conflicts,
    pagination_limits,
    pagination_cursor_walks_all_pages,
    malformed_json_is_400,
    wrong_content_type_is_415,
    wrong_json_types_are_422,
    oversized_body_is_413,
    bad_query_and_path_params_are_400,
    unknown_route_and_method_are_problems,
    request_id_is_echoed_or_generated,
    health_ready_and_openapi,
);

async fn crud_roundtrip(app: TestApp) {
    let resp = app.create("Ada Lovelace", "ada@example.com").await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "Ada Lovelace");
    assert!(created["created_at"].is_string());

    let got: Value = app
        .client
        .get(app.url(&format!("/users/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, created, "GET returns what POST returned");

    let resp = app
        .client
        .patch(app.url(&format!("/users/{id}")))
        .json(&json!({"name": "Ada King"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let patched: Value = resp.json().await.unwrap();
    assert_eq!(patched["name"], "Ada King");
    assert_eq!(patched["email"], "ada@example.com");
    assert_eq!(patched["created_at"], created["created_at"]);

    // Empty patch is a no-op that returns the user.
    let resp = app
        .client
        .patch(app.url(&format!("/users/{id}")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let list: Value = app
        .client
        .get(app.url("/users"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["next_after"], Value::Null);

    let resp = app
        .client
        .delete(app.url(&format!("/users/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app
        .client
        .get(app.url(&format!("/users/{id}")))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404).await;
    let resp = app
        .client
        .delete(app.url(&format!("/users/{id}")))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404).await;
}

async fn create_normalises_and_sets_location(app: TestApp) {
    let resp = app.create("  Grace Hopper  ", "  Grace@Navy.MIL ").await;
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(location, format!("/users/{}", body["id"]));
    assert_eq!(body["name"], "Grace Hopper");
    assert_eq!(body["email"], "grace@navy.mil");
    let resp = app.client.get(app.url(&location)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // 100 multi-byte characters is fine.
    let resp = app.create(&"é".repeat(100), "e@example.com").await;
    assert_eq!(resp.status(), 201);
}

async fn duplicate_email_is_409(app: TestApp) {
    assert_eq!(app.create("A", "dup@example.com").await.status(), 201);
    let body = assert_problem(app.create("B", "DUP@example.com").await, 409).await;
    assert!(body["detail"].as_str().unwrap().contains("email"));
}

async fn unknown_id_is_404(app: TestApp) {
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"name": "x"}))),
        ("DELETE", None),
    ] {
        let mut req = app
            .client
            .request(method.parse().unwrap(), app.url("/users/999999"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        assert_problem(req.send().await.unwrap(), 404).await;
    }
}

async fn validation_errors_have_field_errors(app: TestApp) {
    let long = "x".repeat(101);
    let body = assert_problem(app.create(&long, "not-an-email").await, 422).await;
    let errors = body["errors"].as_array().expect("errors array");
    let fields: Vec<&str> = errors
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"name") && fields.contains(&"email"),
        "{body}"
    );
    for e in errors {
        assert!(e["code"].is_string() && e["message"].is_string(), "{e}");
    }
    let body = assert_problem(app.create("   ", "a@b.co").await, 422).await;
    assert_eq!(body["errors"][0]["field"], "name");
    for bad in ["a@b", "a@@b.co", "@b.co", "a b@c.co", "a@b..co"] {
        let body = assert_problem(app.create("Ok", bad).await, 422).await;
        assert_eq!(body["errors"][0]["field"], "email", "{bad}");
    }
}

async fn missing_fields_are_reported(app: TestApp) {
    let resp = app
        .client
        .post(app.url("/users"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(resp, 422).await;
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{body}");
    assert!(errors.iter().all(|e| e["code"] == "required"));
}

async fn patch_validates_and_conflicts(app: TestApp) {
    let a: Value = app.create("A", "a@example.com").await.json().await.unwrap();
    app.create("B", "b@example.com").await;
    let url = app.url(&format!("/users/{}", a["id"]));
    let resp = app
        .client
        .patch(&url)
        .json(&json!({"email": "B@example.com"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409).await;
    let resp = app
        .client
        .patch(&url)
        .json(&json!({"name": "", "email": "nope"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(resp, 422).await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
    // Setting the same email again is not a conflict.
    let resp = app
        .client
        .patch(&url)
        .json(&json!({"email": "a@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn seed(app: &TestApp, n: usize) -> Vec<i64> {
    let rows: Vec<(String, String)> = (0..n)
        .map(|i| (format!("User {i}"), format!("user{i}@example.com")))
        .collect();
    app.db.insert_batch(&rows).await.unwrap();
    let all = app.db.list_users(0, 10_000).await.unwrap();
    all.into_iter().map(|u| u.id).collect()
}

async fn get_page(app: &TestApp, query: &str) -> Value {
    let resp = app
        .client
        .get(app.url(&format!("/users{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{query}");
    resp.json().await.unwrap()
}

async fn pagination_limits(app: TestApp) {
    let ids = seed(&app, 1001).await;
    assert_eq!(ids.len(), 1001);
    let p = get_page(&app, "").await;
    assert_eq!(p["items"].as_array().unwrap().len(), 100, "default limit");
    assert_eq!(p["next_after"], ids[99]);
    let p = get_page(&app, "?limit=1").await;
    assert_eq!(p["items"].as_array().unwrap().len(), 1);
    assert_eq!(p["items"][0]["id"], ids[0]);
    assert_eq!(p["next_after"], ids[0]);
    let p = get_page(&app, "?limit=1000").await;
    assert_eq!(p["items"].as_array().unwrap().len(), 1000);
    assert_eq!(p["next_after"], ids[999]);
    for bad in ["?limit=0", "?limit=1001", "?limit=-5", "?after=-1"] {
        let resp = app
            .client
            .get(app.url(&format!("/users{bad}")))
            .send()
            .await
            .unwrap();
        let body = assert_problem(resp, 422).await;
        assert!(body["errors"][0]["field"].is_string(), "{bad}: {body}");
    }
    // Past the end.
    let last = ids[1000];
    let p = get_page(&app, &format!("?after={last}")).await;
    assert_eq!(p["items"].as_array().unwrap().len(), 0);
    assert_eq!(p["next_after"], Value::Null);
    let p = get_page(&app, &format!("?after={}&limit=1", ids[999])).await;
    assert_eq!(p["items"][0]["id"], last);
    assert_eq!(
        p["next_after"],
        Value::Null,
        "exact last page has no cursor"
    );
}

async fn pagination_cursor_walks_all_pages(app: TestApp) {
    let ids = seed(&app, 25).await;
    // Holes in the id sequence must not matter.
    app.db.delete_user(ids[3]).await.unwrap();
    app.db.delete_user(ids[10]).await.unwrap();
    let mut seen = Vec::new();
    let mut query = "?limit=7".to_owned();
    loop {
        let p = get_page(&app, &query).await;
        for u in p["items"].as_array().unwrap() {
            seen.push(u["id"].as_i64().unwrap());
        }
        match p["next_after"].as_i64() {
            Some(a) => query = format!("?limit=7&after={a}"),
            None => break,
        }
    }
    let expected: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|i| *i != ids[3] && *i != ids[10])
        .collect();
    assert_eq!(seen, expected);
}

async fn malformed_json_is_400(app: TestApp) {
    let resp = app
        .client
        .post(app.url("/users"))
        .header("content-type", "application/json")
        .body("{\"name\": \"x\",")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 400).await;
}

async fn wrong_content_type_is_415(app: TestApp) {
    let resp = app
        .client
        .post(app.url("/users"))
        .header("content-type", "text/plain")
        .body(r#"{"name":"x","email":"x@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 415).await;
    let resp = app
        .client
        .post(app.url("/users"))
        .body(r#"{"name":"x","email":"x@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 415).await;
}

async fn wrong_json_types_are_422(app: TestApp) {
    let resp = app
        .client
        .post(app.url("/users"))
        .json(&json!({"name": 5, "email": ["x"]}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(resp, 422).await;
    assert!(body["errors"].is_array());
    let created: Value = app
        .create("Obj", "obj@example.com")
        .await
        .json()
        .await
        .unwrap();
    let user_path = format!("/users/{}", created["id"]);
    // An array is not an object, even when its items would fit the fields in
    // order (serde's derived impls accept that; found by schemathesis).
    for (method, path, body) in [
        ("POST", "/users", json!([1, 2])),
        ("POST", "/users", json!(["Array", "array@example.com"])),
        ("PATCH", user_path.as_str(), json!([null, null])),
        ("PATCH", user_path.as_str(), json!(["x"])),
        ("POST", "/sessions", json!(["obj@example.com", "password"])),
    ] {
        let resp = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(resp, 422).await;
    }
}

async fn oversized_body_is_413(app: TestApp) {
    let big = "x".repeat(70 * 1024);
    let resp = app
        .client
        .post(app.url("/users"))
        .json(&json!({"name": big, "email": "big@example.com"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 413).await;
    // Also without a content-length (chunked body).
    let stream = futures_like_body(big.into_bytes());
    let resp = app
        .client
        .post(app.url("/users"))
        .header("content-type", "application/json")
        .body(stream)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 413).await;
}

fn futures_like_body(bytes: Vec<u8>) -> reqwest::Body {
    // A body whose length reqwest does not know up front is sent chunked.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::spawn(async move {
        for chunk in bytes.chunks(8192) {
            if tx.send(Ok(chunk.to_vec())).await.is_err() {
                break;
            }
        }
    });
    reqwest::Body::wrap_stream(ReceiverStream(rx))
}

struct ReceiverStream(tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>);

impl futures_core::Stream for ReceiverStream {
    type Item = Result<Vec<u8>, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

async fn bad_query_and_path_params_are_400(app: TestApp) {
    for path in [
        "/users?limit=abc",
        "/users?after=x",
        "/users/abc",
        "/users/99999999999999999999999",
    ] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_problem(resp, 400).await;
    }
    let resp = app
        .client
        .delete(app.url("/users/1.5"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 400).await;
}

async fn unknown_route_and_method_are_problems(app: TestApp) {
    let resp = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_problem(resp, 404).await;
    let resp = app.client.put(app.url("/users")).send().await.unwrap();
    assert_problem(resp, 405).await;
    // Test hooks are off by default.
    let resp = app
        .client
        .get(app.url("/__test/panic"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404).await;
}

async fn request_id_is_echoed_or_generated(app: TestApp) {
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    let resp = app.client.get(app.url("/nope")).send().await.unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "generated id {id}");
}

async fn health_ready_and_openapi(app: TestApp) {
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/users",
        "/users/{id}",
        "/healthz",
        "/readyz",
        "/sessions",
        "/sessions/current",
        "/users/import",
        "/jobs/{id}",
    ] {
        assert!(doc["paths"][p].is_object(), "missing {p}");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["schemas"]["Job"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["paths"]["/users/{id}"]["patch"]["security"].is_array());
    for (path, method, codes) in [
        ("/users", "get", &["200", "400", "422", "503"][..]),
        (
            "/users",
            "post",
            &["201", "400", "409", "413", "415", "422", "503"],
        ),
        (
            "/users/{id}",
            "patch",
            &[
                "200", "400", "401", "403", "404", "409", "413", "415", "422", "503",
            ],
        ),
        (
            "/users/{id}",
            "delete",
            &["204", "400", "401", "403", "404", "503"],
        ),
        (
            "/sessions",
            "post",
            &["201", "400", "401", "413", "415", "422", "429", "503"],
        ),
        (
            "/users/import",
            "post",
            &["202", "400", "401", "403", "413", "415", "422", "503"],
        ),
        (
            "/jobs/{id}",
            "get",
            &["200", "400", "401", "403", "404", "503"],
        ),
    ] {
        let responses = &doc["paths"][path][method]["responses"];
        let mut documented: Vec<&str> = responses
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        documented.sort();
        assert_eq!(documented, codes, "{method} {path}");
    }
    // Validator bounds are in the schema.
    let params = doc["paths"]["/users"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let param = |n: &str| params.iter().find(|p| p["name"] == n).unwrap()["schema"].clone();
    assert_eq!(param("limit")["minimum"], 1);
    assert_eq!(param("limit")["maximum"], 1000);
    assert_eq!(param("after")["minimum"], 0);
    let new_user = &doc["components"]["schemas"]["NewUser"];
    assert_eq!(new_user["required"], json!(["name", "email"]));
    assert_eq!(new_user["properties"]["name"]["maxLength"], 100);
    assert!(new_user["properties"]["email"]["allOf"][0]["pattern"].is_string());
    // Stateful links: create -> get / patch / delete.
    let links = &doc["paths"]["/users"]["post"]["responses"]["201"]["links"];
    assert_eq!(links["GetUser"]["operationId"], "get_user");
    assert_eq!(
        links["DeleteUser"]["parameters"]["id"],
        "$response.body#/id"
    );
    assert_eq!(
        doc["paths"]["/sessions"]["post"]["responses"]["429"]["headers"]["Retry-After"]["schema"]
            ["type"],
        "integer"
    );
}
