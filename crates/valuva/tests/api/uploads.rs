//! Image uploads: every accepted type gets its renditions; files that are not what they claim,
//! broken, bombs or too big are refused with 4xx and nothing is stored.

use crate::support::{TestApp, assert_problem, statuses_of_concurrent};
use image::{DynamicImage, ImageFormat, RgbaImage};
use reqwest::{StatusCode, multipart};
use serde_json::Value;
use std::io::Cursor;

fn picture(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(width, height, |x, y| image::Rgba([(x % 256) as u8, (y % 256) as u8, 128, 255]));
    let img = match format {
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(img).to_rgb8()),
        _ => DynamicImage::ImageRgba8(img),
    };
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A JPEG carrying an EXIF block with a (fake) GPS tag right after its SOI marker.
fn jpeg_with_exif() -> Vec<u8> {
    let plain = picture(ImageFormat::Jpeg, 400, 300);
    let exif_body = b"Exif\0\0II*\0\x08\0\0\0\x01\0\x25\x88\x04\0\x01\0\0\0\x1a\0\0\0\0\0\0\0GPS-SECRET-LOCATION";
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((exif_body.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(exif_body);
    out.extend_from_slice(&plain[2..]);
    out
}

async fn upload(app: &TestApp, token: &str, name: &str, mime: &str, bytes: Vec<u8>) -> reqwest::Response {
    let part = multipart::Part::bytes(bytes).file_name(name.to_owned()).mime_str(mime).unwrap();
    app.req(reqwest::Method::POST, "/api/v1/admin/uploads", Some(token))
        .multipart(multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap()
}

fn stored_files(app: &TestApp) -> usize {
    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p).map(|d| d.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum()).unwrap_or(0)
    }
    walk(&app.dir.path().join("uploads"))
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(|c| {
        c.upload_max_bytes = 2 * 1024 * 1024;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_image_type_gets_stripped_original_and_webp_renditions() {
    let app = spawn().await;
    let staff = app.admin_token().await;
    for (format, mime, name) in [
        (ImageFormat::Jpeg, "image/jpeg", "a.jpg"),
        (ImageFormat::Png, "image/png", "b.png"),
        (ImageFormat::WebP, "image/webp", "c.webp"),
        (ImageFormat::Gif, "image/gif", "d.gif"),
    ] {
        // The client's type and name do not matter: the bytes decide.
        let res = upload(&app, &staff, name, "application/octet-stream", picture(format, 2000, 1000)).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{name}: {}", res.text().await.unwrap());
        let m: Value = res.json().await.unwrap();
        assert_eq!(m["content_type"], mime);
        let id = m["id"].as_str().unwrap();
        assert_eq!(app.count(&format!("audit_logs WHERE action = 'CREATE' AND entity_type = 'media' AND entity_id = '{id}'")).await, 1);
        assert_eq!((m["width"].as_u64(), m["height"].as_u64()), (Some(2000), Some(1000)));
        let widths: Vec<u64> = m["renditions"].as_array().unwrap().iter().map(|r| r["width"].as_u64().unwrap()).collect();
        assert_eq!(widths, [200, 800, 1600]);
        for r in m["renditions"].as_array().unwrap() {
            let res = app.get(r["url"].as_str().unwrap(), None).await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()["content-type"], "image/webp");
            assert!(res.headers()["cache-control"].to_str().unwrap().contains("immutable"));
            let img = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
            assert_eq!((img.width() as u64, img.height() as u64), (r["width"].as_u64().unwrap(), r["height"].as_u64().unwrap()));
            assert_eq!(img.height() * 2, img.width(), "aspect ratio kept");
        }
        let original = app.get(m["url"].as_str().unwrap(), None).await;
        assert_eq!(original.headers()["content-type"], mime);
    }
    // Smaller than a rendition width: never upscaled.
    let m: Value = upload(&app, &staff, "small.png", "image/png", picture(ImageFormat::Png, 300, 150)).await.json().await.unwrap();
    let widths: Vec<u64> = m["renditions"].as_array().unwrap().iter().map(|r| r["width"].as_u64().unwrap()).collect();
    assert_eq!(widths, [200, 300], "one rendition at its own width, not one per wider width");

    // Metadata is gone from what is stored.
    let with_exif = jpeg_with_exif();
    assert!(with_exif.windows(19).any(|w| w == b"GPS-SECRET-LOCATION"));
    let m: Value = upload(&app, &staff, "exif.jpg", "image/jpeg", with_exif).await.json().await.unwrap();
    let stored = app.get(m["url"].as_str().unwrap(), None).await.bytes().await.unwrap();
    assert!(!stored.windows(19).any(|w| w == b"GPS-SECRET-LOCATION"), "EXIF stripped");
    assert!(!stored.windows(4).any(|w| w == b"Exif"));
    // A stored upload's id with a name longer than a file system takes: 404, not 500.
    let dir = m["url"].as_str().unwrap().rsplit_once('/').unwrap().0.to_owned();
    for name in ["A".repeat(33), "A".repeat(256), "w800.webp".repeat(40)] {
        assert_problem(app.get(&format!("{dir}/{name}"), None).await, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_4xx_and_store_nothing() {
    let app = spawn().await;
    let staff = app.admin_token().await;
    // A text file named like a photo.
    let res = upload(&app, &staff, "photo.jpg", "image/jpeg", b"just some text, honestly".to_vec()).await;
    assert_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    // A truncated PNG and a truncated JPEG.
    let png = picture(ImageFormat::Png, 640, 480);
    let res = upload(&app, &staff, "cut.png", "image/png", png[..png.len() / 2].to_vec()).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let jpg = picture(ImageFormat::Jpeg, 640, 480);
    let res = upload(&app, &staff, "cut.jpg", "image/jpeg", jpg[..600].to_vec()).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    // A decompression bomb: a valid PNG header declaring 100,000 × 100,000 pixels.
    let mut bomb = picture(ImageFormat::Png, 1, 1);
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let res = upload(&app, &staff, "bomb.png", "image/png", bomb).await;
    let body = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("100000"), "{body}");
    // Over UPLOAD_MAX_BYTES (2 MiB here). The server answers as soon as the limit is crossed;
    // the small excess still fits the socket buffer, so this client reads the answer.
    let res = upload(&app, &staff, "huge.png", "image/png", vec![0x89; 2 * 1024 * 1024 + 32 * 1024]).await;
    assert_problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // No file field; not multipart; not staff.
    let res = app
        .req(reqwest::Method::POST, "/api/v1/admin/uploads", Some(&staff))
        .multipart(multipart::Form::new().text("x", "y"))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let res = app.post("/api/v1/admin/uploads", Some(&staff), serde_json::json!({})).await;
    assert_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let res = app
        .req(reqwest::Method::POST, "/api/v1/admin/uploads", Some(&staff))
        .header("content-type", "image/png")
        .body(picture(ImageFormat::Png, 10, 10))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let customer = app.customer_token("c@example.com").await;
    let res = upload(&app, &customer, "a.png", "image/png", picture(ImageFormat::Png, 10, 10)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    assert_eq!(app.count("media").await, 0, "nothing recorded");
    assert_eq!(stored_files(&app), 0, "nothing stored");
    // Paths outside the store are not served.
    assert_eq!(app.get("/media/..%2F..%2Fetc/passwd", None).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/media/{}/.hidden", uuid::Uuid::now_v7()), None).await.status(), StatusCode::NOT_FOUND);
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// moto's S3-compatible server (from PyPI, installed on first use) on a free port.
struct Moto {
    port: u16,
    child: std::process::Child,
}

impl Moto {
    fn start() -> Self {
        use std::process::{Command, Stdio};
        let present = Command::new("python3").args(["-c", "import moto.server"]).status().is_ok_and(|s| s.success());
        if !present {
            let ok = Command::new("python3").args(["-m", "pip", "install", "--quiet", "moto[server]"]).status().is_ok_and(|s| s.success());
            assert!(ok, "pip install moto[server] failed; the S3 test needs a local S3-compatible server");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { port, child }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_go_to_an_s3_compatible_bucket() {
    let moto = Moto::start();
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    // The bucket exists before the shop uses it (moto answers S3's CreateBucket).
    let res = reqwest::Client::new().put(format!("{endpoint}/shop-media")).send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    // S3 settings as STORAGE_URL query parameters (a deployment would rather use AWS_* variables).
    let url = format!(
        "s3://shop-media/products?endpoint={endpoint}&allow_http=true&access_key_id=testing&secret_access_key=testing&region=us-east-1"
    );
    let public = format!("{endpoint}/shop-media/products");
    let app = TestApp::spawn_with(move |c| {
        c.storage_url = platform::Secret::new(url);
        c.storage_public_url = Some(public);
    })
    .await;
    let staff = app.admin_token().await;
    let res = upload(&app, &staff, "p.png", "image/png", picture(ImageFormat::Png, 1000, 500)).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
    let m: Value = res.json().await.unwrap();
    let url = m["renditions"][1]["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{endpoint}/shop-media/products/")), "{url}");
    // Read back from the bucket (signed, through the app's store).
    let name = format!("{}/w800.webp", m["id"].as_str().unwrap());
    let stored = app.state.media.read(&name).await.unwrap().expect("the rendition is in the bucket");
    let img = image::load_from_memory(&stored).unwrap();
    assert_eq!(img.width(), 800);
    assert_eq!(stored_files(&app), 0, "nothing went to the local directory");
}

/// The media library: uploads listed newest first by cursor, one read, and deleted with their
/// files and an audit row; refused while a product shows the image; bad input is 4xx and
/// changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_listed_read_and_deleted_unless_a_product_shows_them() {
    let app = spawn().await;
    let staff = app.admin_token().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let m: Value = upload(&app, &staff, "p.png", "image/png", picture(ImageFormat::Png, 300, 200)).await.json().await.unwrap();
        ids.push(m["id"].as_str().unwrap().to_owned());
    }
    let files_each = stored_files(&app) / 3;
    assert_eq!(files_each, 3, "the original and renditions 200 and 300 px wide");

    let first: Value = app.get("/api/v1/admin/uploads?limit=2", Some(&staff)).await.json().await.unwrap();
    let listed: Vec<&str> = first["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()], "newest first");
    let cursor = first["pagination"]["next_cursor"].as_str().unwrap();
    let rest: Value = app.get(&format!("/api/v1/admin/uploads?limit=2&cursor={cursor}"), Some(&staff)).await.json().await.unwrap();
    assert_eq!(rest["data"][0]["id"], ids[0].as_str());
    assert!(rest["pagination"]["next_cursor"].is_null());
    let one: Value = app.get(&format!("/api/v1/admin/uploads/{}", ids[0]), Some(&staff)).await.json().await.unwrap();
    assert_eq!(one["width"], 300);

    // A product showing the second upload keeps it.
    let url = app.get(&format!("/api/v1/admin/uploads/{}", ids[1]), Some(&staff)).await.json::<Value>().await.unwrap()["url"].clone();
    let product = serde_json::json!({"title": "Pictured", "status": "active", "images": [url],
        "variants": [{"sku": "PIC-1", "price": {"amount": 100, "currency": "EUR"}, "stock": 1}]});
    let product: Value = app.post("/api/v1/admin/products", Some(&staff), product).await.json().await.unwrap();
    let refused = app.delete(&format!("/api/v1/admin/uploads/{}", ids[1]), Some(&staff)).await;
    let problem = assert_problem(refused, StatusCode::CONFLICT, "media_in_use").await;
    assert!(problem["detail"].as_str().unwrap().contains(product["id"].as_str().unwrap()));

    // Bad input and other callers: 4xx, nothing deleted.
    let customer = app.customer_token("looker@example.com").await;
    assert_problem(app.get("/api/v1/admin/uploads", Some(&customer)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_problem(app.delete(&format!("/api/v1/admin/uploads/{}", ids[0]), None).await, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    assert_problem(app.get("/api/v1/admin/uploads?limit=0", Some(&staff)).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
        .await;
    assert_problem(app.get("/api/v1/admin/uploads?cursor=forged", Some(&staff)).await, StatusCode::BAD_REQUEST, "invalid_cursor").await;
    assert_eq!(app.delete("/api/v1/admin/uploads/not-a-uuid", Some(&staff)).await.status().as_u16() / 100, 4);
    let missing = uuid::Uuid::now_v7();
    assert_problem(app.delete(&format!("/api/v1/admin/uploads/{missing}"), Some(&staff)).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!((app.count("media").await, stored_files(&app)), (3, 3 * files_each));

    // Deleting one removes its row and files, is audited, and its URLs stop answering.
    let res = app.delete(&format!("/api/v1/admin/uploads/{}", ids[0]), Some(&staff)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!((app.count("media").await, stored_files(&app)), (2, 2 * files_each));
    assert_eq!(app.count(&format!("audit_logs WHERE action = 'DELETE' AND entity_type = 'media' AND entity_id = '{}'", ids[0])).await, 1);
    assert_eq!(app.get(one["url"].as_str().unwrap(), None).await.status(), StatusCode::NOT_FOUND);
    assert_problem(app.get(&format!("/api/v1/admin/uploads/{}", ids[0]), Some(&staff)).await, StatusCode::NOT_FOUND, "not_found").await;

    // Once the product is deleted, its image may go too.
    assert_eq!(
        app.delete(&format!("/api/v1/admin/products/{}", product["id"].as_str().unwrap()), Some(&staff)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.delete(&format!("/api/v1/admin/uploads/{}", ids[1]), Some(&staff)).await.status(), StatusCode::NO_CONTENT);
}

/// Deletes of one upload racing each other: one succeeds, the rest find it gone (404), and one
/// audit row is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deletes_of_one_upload_delete_it_once() {
    let app = spawn().await;
    let staff = app.admin_token().await;
    let m: Value = upload(&app, &staff, "p.png", "image/png", picture(ImageFormat::Png, 300, 200)).await.json().await.unwrap();
    let id = m["id"].as_str().unwrap().to_owned();
    let requests = (0..6).map(|_| app.req(reqwest::Method::DELETE, &format!("/api/v1/admin/uploads/{id}"), Some(&staff)));
    let mut statuses = statuses_of_concurrent(requests.collect()).await;
    statuses.sort();
    assert_eq!(
        statuses,
        [
            StatusCode::NO_CONTENT,
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND
        ]
    );
    assert_eq!(app.count(&format!("audit_logs WHERE action = 'DELETE' AND entity_type = 'media' AND entity_id = '{id}'")).await, 1);
    assert_eq!((app.count("media").await, stored_files(&app)), (0, 0));
}

/// A request that times out while its files are being stored still ends with all its files and
/// its row, because the storing runs on a task of its own; before, the dropped request left the
/// file it was sending in the bucket with no row naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_request_times_out_while_storing_is_stored_whole() {
    let moto = Moto::start();
    let bucket = format!("http://127.0.0.1:{}/late-media", moto.port);
    assert!(reqwest::Client::new().put(&bucket).send().await.unwrap().status().is_success());
    // In front of the bucket, a proxy that holds every new connection for 600 ms: storing
    // outlasts the request's 300 ms.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let upstream = format!("127.0.0.1:{}", moto.port);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(600)).await;
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let url =
        format!("s3://late-media?endpoint=http://{proxy}&allow_http=true&access_key_id=testing&secret_access_key=testing&region=us-east-1");
    let app = TestApp::spawn_with(move |c| {
        c.storage_url = platform::Secret::new(url);
        c.request_timeout_ms = 300;
    })
    .await;
    let staff = app.admin_token().await;
    let res = upload(&app, &staff, "p.png", "image/png", picture(ImageFormat::Png, 1000, 500)).await;
    assert_ne!(res.status(), StatusCode::CREATED, "the request timed out before the files were stored");

    let objects = || async {
        let listing = reqwest::Client::new().get(format!("{bucket}?list-type=2")).send().await.unwrap().text().await.unwrap();
        listing.matches("<Key>").count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.count("media").await == 0 {
        assert!(std::time::Instant::now() < deadline, "the upload was never recorded ({} objects in the bucket)", objects().await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let listed: Value = app.get("/api/v1/admin/uploads", Some(&staff)).await.json().await.unwrap();
    let renditions = listed["data"][0]["renditions"].as_array().unwrap().len();
    assert_eq!(objects().await, 1 + renditions, "the original and its renditions, each named by the row, and nothing else");
}
