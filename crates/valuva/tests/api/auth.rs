use crate::support::{PASSWORD, TestApp, assert_problem};
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn register_login_me_refresh_rotation_reuse_and_logout() {
    let app = TestApp::spawn().await;
    let reg = app.register("Ann@Example.com").await;
    assert_eq!(reg["user"]["email"], "ann@example.com");
    assert_eq!(reg["user"]["role"], "customer");
    assert_eq!(reg["token_type"], "Bearer");
    assert_eq!(reg["expires_in"], 900);
    assert!(reg["user"].get("password_hash").is_none());

    let res = app.post("/api/v1/auth/login", None, json!({"email": "ann@example.com", "password": PASSWORD})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let login: Value = res.json().await.unwrap();
    let access = login["access_token"].as_str().unwrap();

    let me: Value = app.get("/api/v1/me", Some(access)).await.json().await.unwrap();
    assert_eq!(me["email"], "ann@example.com");

    // Rotation: each refresh hands out a new token and spends the old one.
    let r1 = login["refresh_token"].as_str().unwrap().to_owned();
    let res = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": r1})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let s2: Value = res.json().await.unwrap();
    let r2 = s2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    assert_eq!(app.get("/api/v1/me", s2["access_token"].as_str()).await.status(), StatusCode::OK);

    // Reuse of the spent token revokes the whole family, including the fresh token.
    let res = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": r1})).await;
    assert_problem(res, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    let res = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": r2})).await;
    assert_problem(res, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;

    // The registration session is a different family and still works; logout ends it.
    let r_reg = reg["refresh_token"].as_str().unwrap();
    let res = app.post("/api/v1/auth/logout", None, json!({"refresh_token": r_reg})).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": r_reg})).await;
    assert_problem(res, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // Logging out twice is harmless.
    assert_eq!(app.post("/api/v1/auth/logout", None, json!({"refresh_token": r_reg})).await.status(), StatusCode::NO_CONTENT);

    // Audit rows: CREATE on register, LOGIN, LOGOUT for reuse and for logout.
    let admin = app.admin_token().await;
    let logs: Value = app
        .get(&format!("/api/v1/admin/audit-logs?actor={}", reg["user"]["id"].as_str().unwrap()), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = logs["data"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["LOGOUT", "LOGOUT", "LOGIN", "CREATE"]);
    assert!(!logs.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn concurrent_refresh_with_one_token_has_one_winner() {
    let app = TestApp::spawn().await;
    let reg = app.register("race@example.com").await;
    let token = reg["refresh_token"].as_str().unwrap();
    let body = json!({"refresh_token": token});
    let (a, b) = tokio::join!(app.post("/api/v1/auth/refresh", None, body.clone()), app.post("/api/v1/auth/refresh", None, body.clone()));
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
}

#[tokio::test]
async fn login_failures_look_the_same() {
    let app = TestApp::spawn().await;
    app.register("known@example.com").await;
    let unknown = app.post("/api/v1/auth/login", None, json!({"email": "nobody@example.com", "password": PASSWORD})).await;
    let unknown = assert_problem(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let wrong = app.post("/api/v1/auth/login", None, json!({"email": "known@example.com", "password": "wrong password"})).await;
    let wrong = assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(unknown["detail"], wrong["detail"]);
}

#[tokio::test]
async fn tampered_and_unsigned_tokens_are_rejected() {
    let app = TestApp::spawn().await;
    let token = app.customer_token("eve@example.com").await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let claims = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap().replace("customer", "admin");
    let forged = format!("{}.{}.{}", parts[0], b64.encode(&claims), parts[2]);
    assert_problem(app.get("/api/v1/admin/users", Some(&forged)).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let none = format!("{}.{}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#), b64.encode(&claims));
    assert_problem(app.get("/api/v1/me", Some(&none)).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_problem(app.get("/api/v1/me", Some("garbage")).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_problem(app.get("/api/v1/me", None).await, StatusCode::UNAUTHORIZED, "unauthenticated").await;
}

#[tokio::test]
async fn password_reset_by_emailed_single_use_token() {
    let app = TestApp::spawn().await;
    let reg = app.register("forgetful@example.com").await;
    // Unknown emails get the same answer and no email.
    assert_eq!(app.post("/api/v1/auth/password/forgot", None, json!({"email": "ghost@example.com"})).await.status(), StatusCode::ACCEPTED);
    assert!(!app.outbox().exists());
    assert_eq!(
        app.post("/api/v1/auth/password/forgot", None, json!({"email": "forgetful@example.com"})).await.status(),
        StatusCode::ACCEPTED
    );
    // Sent by the background worker: wait for the file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mail = loop {
        if let Some(Ok(e)) = std::fs::read_dir(app.outbox()).ok().and_then(|mut d| d.next()) {
            break e.path();
        }
        assert!(std::time::Instant::now() < deadline, "no email in the outbox");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let text = std::fs::read_to_string(mail).unwrap();
    assert!(text.contains("To: forgetful@example.com"));
    // Asking again at once sends nothing more (one email a minute per account), same answer.
    for _ in 0..3 {
        let res = app.post("/api/v1/auth/password/forgot", None, json!({"email": "forgetful@example.com"})).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(app.count("password_reset_tokens").await, 1);
    assert_eq!(app.count("jobs WHERE kind = 'email.password_reset'").await, 1);
    let token = text.lines().find_map(|l| l.strip_prefix("Your reset token: ")).unwrap().trim().to_owned();

    let res = app.post("/api/v1/auth/password/reset", None, json!({"token": token, "password": "short"})).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let res = app.post("/api/v1/auth/password/reset", None, json!({"token": token, "password": "a brand new secret"})).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Single use; old sessions are gone; the new password works.
    let res = app.post("/api/v1/auth/password/reset", None, json!({"token": token, "password": "another new secret"})).await;
    assert_problem(res, StatusCode::BAD_REQUEST, "invalid_reset_token").await;
    let res = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": reg["refresh_token"]})).await;
    assert_problem(res, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let res = app.post("/api/v1/auth/login", None, json!({"email": "forgetful@example.com", "password": PASSWORD})).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app.post("/api/v1/auth/login", None, json!({"email": "forgetful@example.com", "password": "a brand new secret"})).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn cookie_mode_requires_csrf_double_submit() {
    let app = TestApp::spawn_with(|c| c.auth_cookies = true).await;
    let res = app.post("/api/v1/auth/register", None, json!({"email": "web@example.com", "password": PASSWORD})).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let cookies: Vec<String> = res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let refresh = cookies.iter().find(|c| c.starts_with("valuva_refresh=")).unwrap();
    assert!(refresh.contains("HttpOnly") && refresh.contains("Secure") && refresh.contains("SameSite=Strict"));
    let body: Value = res.json().await.unwrap();
    assert!(body["refresh_token"].is_null());
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let pair = |c: &str| c.split(';').next().unwrap().to_owned();
    let cookie_header = cookies.iter().map(|c| pair(c)).collect::<Vec<_>>().join("; ");

    let send = |csrf: Option<&str>| {
        let mut r = app.req(reqwest::Method::POST, "/api/v1/auth/refresh", None).header("cookie", &cookie_header).json(&json!({}));
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r.send()
    };
    assert_problem(send(None).await.unwrap(), StatusCode::FORBIDDEN, "csrf_failed").await;
    assert_problem(send(Some("wrong")).await.unwrap(), StatusCode::FORBIDDEN, "csrf_failed").await;
    let res = send(Some(&csrf)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("valuva_refresh=")));
}

/// In cookie mode the cookies last as long as the refresh token: its TTL, or less when the
/// session's maximum age ends first.
#[tokio::test]
async fn refresh_cookies_end_with_the_session() {
    let app = TestApp::spawn_with(|c| {
        c.auth_cookies = true;
        c.refresh_token_ttl_days = 30;
        c.session_max_age_days = 2;
    })
    .await;
    let res = app.post("/api/v1/auth/register", None, json!({"email": "brief@example.com", "password": PASSWORD})).await;
    let max_ages: Vec<u64> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap())
        .filter(|c| c.starts_with("valuva_refresh=") || c.starts_with("valuva_csrf="))
        .filter_map(|c| c.split(';').find_map(|a| a.trim().strip_prefix("Max-Age=")?.parse().ok()))
        .collect();
    assert_eq!(max_ages.len(), 2, "the refresh and CSRF cookies");
    assert!(max_ages.iter().all(|a| (2 * 86_400 - 60..=2 * 86_400).contains(a)), "{max_ages:?}");
}

/// A session's refresh tokens never outlive SESSION_MAX_AGE_DAYS from its sign-in, however often
/// it is refreshed; an older session (here aged by rewriting its family id, a UUIDv7 that carries
/// the sign-in time) is refused and its token left unspent.
#[tokio::test]
async fn refreshing_never_carries_a_session_past_its_maximum_age() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    use store::entities::refresh_tokens as rt;
    let app = TestApp::spawn_with(|c| {
        c.refresh_token_ttl_days = 30;
        c.session_max_age_days = 2;
    })
    .await;
    let reg = app.register("long@example.com").await;
    let user: uuid::Uuid = reg["user"]["id"].as_str().unwrap().parse().unwrap();
    let signed_in = chrono::Utc::now();
    let mut token = reg["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let res = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": token})).await;
        assert_eq!(res.status(), StatusCode::OK);
        token = res.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();
    }
    let db = app.state.db.primary();
    let rows = rt::Entity::find().filter(rt::Column::UserId.eq(user)).all(db).await.unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        let left = r.expires_at - signed_in;
        assert!(left <= chrono::TimeDelta::days(2) && left > chrono::TimeDelta::days(2) - chrono::TimeDelta::minutes(1), "{left}");
    }

    // The same session, begun three days ago: a token issued before the cap existed (expiring
    // long after), and one issued with it (expired with the session).
    let three_days_ago = (signed_in - chrono::TimeDelta::days(3)).timestamp() as u64;
    let aged = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, three_days_ago, 0));
    // The user's tokens now belong to that family and expire at `expires_at`; a refresh is
    // refused as a session that ended, whether the token's own expiry is later or earlier.
    for expires_at in [signed_in + chrono::TimeDelta::days(27), signed_in - chrono::TimeDelta::days(1)] {
        rt::Entity::update_many()
            .col_expr(rt::Column::FamilyId, Expr::value(aged))
            .col_expr(rt::Column::ExpiresAt, Expr::value(expires_at))
            .filter(rt::Column::UserId.eq(user))
            .exec(db)
            .await
            .unwrap();
        let res = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": token})).await;
        assert_problem(res, StatusCode::UNAUTHORIZED, "session_expired").await;
    }
    let unspent = rt::Entity::find().filter(rt::Column::UserId.eq(user)).filter(rt::Column::UsedAt.is_null()).all(db).await.unwrap();
    assert_eq!(unspent.len(), 1, "the refused token was not spent, and no new one was issued");
}
