//! What a Rust application on axum is handed, for each request stored under the directory given
//! (case/headers.json and case/body, as for parse.js): axum's own `Multipart` extractor, which is
//! multer with the boundary from `multer::parse_boundary` ("multer": every field's name, file name
//! and bytes), axum's `Form<Vec<(String, String)>>` extractor, serde_urlencoded behind a check for
//! the url-encoded content type ("axum-form": names and values) and serde_json into a `Value`
//! ("serde-json": every string, keys too). The extractors run in a real axum `Router`, with the
//! 2 MB default body limit raised to 100 MiB as an application taking uploads does. Prints one
//! JSON object: { case: { parser: [base64 items] } }.
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Form, Multipart};
use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use serde_json::{Map, Value};
use tower::ServiceExt;

fn respond(items: Vec<Vec<u8>>) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::to_vec(&items.iter().map(|i| b64.encode(i)).collect::<Vec<_>>()).unwrap()
}

async fn multipart(mut m: Multipart) -> Vec<u8> {
    // Fields are handed over as they stream in: what came before an error (and the part of a
    // field read before it) has reached the application already, as with busboy.
    let mut items = Vec::new();
    while let Ok(Some(mut field)) = m.next_field().await {
        if let Some(name) = field.name() {
            items.push(name.as_bytes().to_vec());
        }
        if let Some(name) = field.file_name() {
            items.push(name.as_bytes().to_vec());
        }
        let mut data = Vec::new();
        while let Ok(Some(chunk)) = field.chunk().await {
            data.extend_from_slice(&chunk);
        }
        items.push(data);
    }
    respond(items)
}

async fn form(Form(pairs): Form<Vec<(String, String)>>) -> Vec<u8> {
    respond(
        pairs
            .into_iter()
            .flat_map(|(n, v)| [n.into_bytes(), v.into_bytes()])
            .collect(),
    )
}

fn strings(v: &Value, into: &mut Vec<Vec<u8>>) {
    match v {
        Value::String(s) => into.push(s.as_bytes().to_vec()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, into)),
        Value::Object(o) => {
            for (k, x) in o {
                into.push(k.as_bytes().to_vec());
                strings(x, into);
            }
        }
        _ => {}
    }
}

// The header values were recorded as Latin-1 text: these are their bytes again.
fn latin1(s: &str) -> Vec<u8> {
    match s
        .chars()
        .map(|c| u8::try_from(u32::from(c)))
        .collect::<Result<Vec<u8>, _>>()
    {
        Ok(b) => b,
        Err(_) => s.as_bytes().to_vec(),
    }
}

async fn through(app: &Router, path: &str, headers: &Map<String, Value>, body: &[u8]) -> Value {
    let mut req = Request::builder().method("POST").uri(path);
    for (n, v) in headers {
        let (Ok(n), Some(v)) = (HeaderName::from_bytes(n.as_bytes()), v.as_str()) else {
            continue;
        };
        if n == "content-length" || n == "transfer-encoding" {
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(&latin1(v)) {
            req = req.header(n, v);
        }
    }
    let req = req
        .header("content-length", body.len())
        .body(Body::from(body.to_vec()))
        .unwrap();
    let Ok(resp) = app.clone().oneshot(req).await;
    if resp.status() != StatusCode::OK {
        return Value::Array(vec![]);
    }
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn run(root: &str) {
    let app = Router::new()
        .route("/multipart", post(multipart))
        .route("/form", post(form))
        .layer(DefaultBodyLimit::max(100 << 20));
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut out = Map::new();
    for name in names {
        let dir = std::path::Path::new(root).join(&name);
        let headers: Map<String, Value> =
            serde_json::from_slice(&std::fs::read(dir.join("headers.json")).unwrap()).unwrap();
        let body = std::fs::read(dir.join("body")).unwrap();
        let mut res = Map::new();
        res.insert(
            "multer".into(),
            through(&app, "/multipart", &headers, &body).await,
        );
        res.insert(
            "axum-form".into(),
            through(&app, "/form", &headers, &body).await,
        );
        let mut items = Vec::new();
        if let Ok(v) = serde_json::from_slice::<Value>(&body) {
            strings(&v, &mut items);
        }
        res.insert(
            "serde-json".into(),
            serde_json::from_slice(&respond(items)).unwrap(),
        );
        out.insert(name, Value::Object(res));
    }
    println!("{}", Value::Object(out));
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .expect("usage: difftest-multer ROOT");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(&root));
}
