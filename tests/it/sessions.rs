//! Web UI users and sessions: argon2 passwords, the HttpOnly SameSite
//! cookie, CSRF on cookie writes, roles, sign-in rate limit, password
//! changes and disabled users ending sessions, sign-in with an API token,
//! and the live outputs accepting the cookie.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::common::{Gateway, GatewayOptions, TOKEN};

/// A browser-like client: keeps the session cookie and CSRF token.
struct Browser {
    base: String,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Browser {
    fn new(gw: &Gateway) -> Self {
        Self {
            base: gw.base.clone(),
            cookie: None,
            csrf: None,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        with_csrf: bool,
    ) -> reqwest::Response {
        let mut req = Gateway::client().request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        if with_csrf && let Some(t) = &self.csrf {
            req = req.header("X-CSRF-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request")
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let resp = self.send(method, path, body, true).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn login(&mut self, body: Value) -> (u16, Value) {
        let resp = self
            .send(Method::POST, "/api/v1/auth/login", Some(body), false)
            .await;
        let status = resp.status().as_u16();
        if let Some(set) = resp.headers().get(header::SET_COOKIE) {
            let set = set.to_str().unwrap().to_owned();
            assert!(set.contains("HttpOnly"), "{set}");
            assert!(set.contains("SameSite=Strict"), "{set}");
            assert!(set.contains("Path=/"), "{set}");
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if let Some(t) = v["csrf_token"].as_str() {
            self.csrf = Some(t.to_owned());
        }
        (status, v)
    }
}

async fn add_user(gw: &Gateway, name: &str, password: &str, role: &str) -> i64 {
    let (s, v) = gw
        .api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": name, "password": password, "role": role})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(
        v.get("password_hash").is_none(),
        "the hash never leaves: {v}"
    );
    v["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn users_sign_in_with_a_cookie_and_writes_need_the_csrf_token() {
    let gw = Gateway::start(GatewayOptions::default());
    add_user(&gw, "王工", "operator-pass-1", "operator").await;
    add_user(&gw, "guard", "viewer-pass-1", "viewer").await;
    // Bad user creations are refused with the field named.
    for (body, field) in [
        (
            json!({"username": "x", "password": "short", "role": "viewer"}),
            "password",
        ),
        (
            json!({"username": " x", "password": "long-enough", "role": "viewer"}),
            "username",
        ),
    ] {
        let (s, v) = gw.api(Method::POST, "/api/v1/users", Some(body)).await;
        assert_eq!((s, v["error"]["field"].as_str()), (400, Some(field)), "{v}");
    }
    let (s, _) = gw
        .api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "GUARD", "password": "another-pass", "role": "viewer"})),
        )
        .await;
    assert_eq!(s, 409, "user names are case-insensitive");

    let mut op = Browser::new(&gw);
    let (s, v) = op
        .login(json!({"username": "王工", "password": "wrong-password"}))
        .await;
    assert_eq!(s, 401, "{v}");
    assert!(op.cookie.is_none());
    let (s, v) = op
        .login(json!({"username": "王工", "password": "operator-pass-1"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["role"], "operator");
    assert!(v["expires_at"].as_i64().unwrap() > 0);
    let (s, v) = op.call(Method::GET, "/api/v1/auth/session", None).await;
    assert_eq!((s, v["username"].as_str()), (200, Some("王工")));

    // The cookie reads, an operator may refresh a catalog (404: no such
    // device, past the role and CSRF checks) but not change settings.
    let (s, _) = op.call(Method::GET, "/api/v1/devices", None).await;
    assert_eq!(s, 200);
    let (s, v) = op
        .call(
            Method::POST,
            "/api/v1/devices/34020000001320000001/catalog/refresh",
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = op
        .call(
            Method::PUT,
            "/api/v1/settings/media",
            Some(json!({"on_demand_grace_secs": 5, "start_timeout_secs": 10})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    // A cookie write without the CSRF header is refused, whatever the role.
    let resp = op
        .send(
            Method::POST,
            "/api/v1/devices/34020000001320000001/catalog/refresh",
            None,
            false,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "csrf");
    // A forged cookie gets nothing.
    let forged = Browser {
        base: gw.base.clone(),
        cookie: Some(format!("camgate_session={}", "0".repeat(64))),
        csrf: op.csrf.clone(),
    };
    let (s, _) = forged.call(Method::GET, "/api/v1/devices", None).await;
    assert_eq!(s, 401);

    // A viewer cannot reach admin APIs.
    let mut viewer = Browser::new(&gw);
    let (s, _) = viewer
        .login(json!({"username": "guard", "password": "viewer-pass-1"}))
        .await;
    assert_eq!(s, 200);
    for (m, p) in [
        (Method::GET, "/api/v1/users"),
        (Method::GET, "/api/v1/tokens"),
    ] {
        let (s, _) = viewer.call(m, p, None).await;
        assert_eq!(s, 403, "{p}");
    }
    let (s, v) = viewer.call(Method::GET, "/api/v1/system", None).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["memory_total_bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(v["cpu_cores"].as_u64().unwrap() > 0, "{v}");

    // Logging out ends the session on the server, not just in the browser.
    let stolen = op.cookie.clone();
    let (s, _) = op.call(Method::POST, "/api/v1/auth/logout", None).await;
    assert_eq!(s, 204);
    let replay = Browser {
        base: gw.base.clone(),
        cookie: stolen,
        csrf: None,
    };
    let (s, _) = replay.call(Method::GET, "/api/v1/devices", None).await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn password_changes_and_disabling_end_sessions_and_sign_in_is_rate_limited() {
    let gw = Gateway::start(GatewayOptions::default());
    let id = add_user(&gw, "ops", "first-password", "admin").await;
    let mut a = Browser::new(&gw);
    let mut b = Browser::new(&gw);
    assert_eq!(
        a.login(json!({"username": "ops", "password": "first-password"}))
            .await
            .0,
        200
    );
    assert_eq!(
        b.login(json!({"username": "OPS", "password": "first-password"}))
            .await
            .0,
        200
    );
    let (s, v) = a
        .call(
            Method::PUT,
            "/api/v1/auth/password",
            Some(json!({"current_password": "nope-nope", "new_password": "second-password"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("wrong_password"))
    );
    let (s, _) = a
        .call(
            Method::PUT,
            "/api/v1/auth/password",
            Some(json!({"current_password": "first-password", "new_password": "second-password"})),
        )
        .await;
    assert_eq!(s, 204);
    // The session it was changed from lives on; the other one ended.
    assert_eq!(a.call(Method::GET, "/api/v1/users", None).await.0, 200);
    assert_eq!(b.call(Method::GET, "/api/v1/users", None).await.0, 401);
    assert_eq!(
        b.login(json!({"username": "ops", "password": "first-password"}))
            .await
            .0,
        401
    );
    assert_eq!(
        b.login(json!({"username": "ops", "password": "second-password"}))
            .await
            .0,
        200
    );

    // Disabling a user ends their sessions and stops sign-in.
    let (s, v) = gw
        .api(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!((s, v["disabled"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(a.call(Method::GET, "/api/v1/users", None).await.0, 401);
    let mut c = Browser::new(&gw);
    assert_eq!(
        c.login(json!({"username": "ops", "password": "second-password"}))
            .await
            .0,
        401
    );

    // Signing in with an API token (a fresh box has only that).
    let (s, v) = c.login(json!({"token": TOKEN})).await;
    assert_eq!((s, v["role"].as_str()), (200, Some("admin")), "{v}");
    assert_eq!(c.call(Method::GET, "/api/v1/users", None).await.0, 200);

    // Five failures in a minute block the address, even for right passwords.
    let mut d = Browser::new(&gw);
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(
            d.login(json!({"username": "nobody", "password": "guess-guess"}))
                .await
                .0,
        );
    }
    assert_eq!(codes, [401, 401, 401, 401, 429, 429]);
    let resp = d
        .send(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"token": TOKEN})),
            false,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

#[tokio::test(flavor = "multi_thread")]
async fn live_outputs_accept_the_session_cookie_when_viewers_need_tokens() {
    let cam = crate::common::Camera::start();
    let gw = Gateway::start(GatewayOptions {
        config_toml: "[viewer]\nrequire_token = true\n".into(),
        ..Default::default()
    });
    gw.add_source("cam", &cam.url("h264"), "tcp").await;
    add_user(&gw, "wall", "wall-display-1", "viewer").await;
    let url = gw.url("/live/cam.flv");
    let anonymous = Gateway::client().get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let mut b = Browser::new(&gw);
    assert_eq!(
        b.login(json!({"username": "wall", "password": "wall-display-1"}))
            .await
            .0,
        200
    );
    let mut resp = b.send(Method::GET, "/live/cam.flv", None, false).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let first = resp.chunk().await.unwrap().expect("FLV bytes");
    assert_eq!(&first[..3], b"FLV");
    drop(resp);
    // The bytes sent are counted per output.
    let (s, v) = gw.get("/api/v1/streams/cam", Some(TOKEN)).await;
    assert_eq!(s, 200);
    assert!(
        v["bytes_out_by_output"]["flv"].as_u64().unwrap() >= 13,
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_sign_in_limits_apply_per_forwarded_client() {
    let gw = Gateway::start(GatewayOptions {
        config_toml: "[http]\ntrusted_proxies = [\"127.0.0.1\"]\n".into(),
        ..Default::default()
    });
    add_user(&gw, "desk", "desk-password-1", "viewer").await;
    let login = |forwarded: &'static str, password: &'static str| {
        let url = gw.url("/api/v1/auth/login");
        async move {
            Gateway::client()
                .post(url)
                .header("X-Forwarded-For", forwarded)
                .header("X-Forwarded-Proto", "https")
                .json(&json!({"username": "desk", "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(login("192.0.2.1", "wrong-password").await.status().as_u16());
    }
    assert_eq!(codes, [401, 401, 401, 401, 429]);
    // Another client behind the same proxy is not blocked; a client cannot
    // escape its block by writing another address further left.
    let ok = login("192.0.2.2", "desk-password-1").await;
    assert_eq!(ok.status(), StatusCode::OK);
    let cookie = ok.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("; Secure"),
        "https at the trusted proxy: {cookie}"
    );
    let spoof = login("198.51.100.1, 192.0.2.1", "desk-password-1").await;
    assert_eq!(spoof.status(), StatusCode::TOO_MANY_REQUESTS);
}
