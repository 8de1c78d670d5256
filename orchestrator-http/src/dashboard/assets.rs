//! The dashboard's own stylesheet, script and icon, compiled into the server.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const STYLESHEET: &str = include_str!("assets/app.css");
const SCRIPT: &str = include_str!("assets/live.js");
const ICON: &str = include_str!("assets/icon.svg");

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/assets/app.css").route(web::get().to(stylesheet)))
        .service(web::resource("/assets/live.js").route(web::get().to(script)))
        .service(web::resource("/assets/icon.svg").route(web::get().to(icon)));
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

async fn stylesheet() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn icon() -> HttpResponse {
    asset("image/svg+xml", ICON)
}
