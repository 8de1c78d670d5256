//! `GET /connect`: connecting a machine as a runner. A person mints a single-use setup
//! token and copies the command that uses it (shown once, counting down to its expiry),
//! follows the install and start steps, and sees the runner sessions with revoke.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::fleet::{RunnerRow, runner_rows};
use super::{Notice, Section, Viewer, explain, page, page_at, see_other_with};
use crate::routes::connect::mint;
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        page_at("/connect")
            .route(web::get().to(connect))
            .route(web::post().to(mint_token)),
    );
}

#[derive(Template)]
#[template(path = "connect.html")]
struct ConnectPage {
    section: Section,
    viewer: Viewer,
    /// The command with a new token and when the token runs out, right after minting.
    minted: Option<(String, String)>,
    server: String,
    rows: Vec<RunnerRow>,
}

async fn render_connect(
    state: &AppState,
    viewer: Viewer,
    minted: Option<(String, String)>,
) -> HttpResponse {
    match runner_rows(state).await {
        Ok(rows) => {
            let template = ConnectPage {
                section: Section::Connect,
                viewer: viewer.clone(),
                minted,
                server: state.public_url.clone(),
                rows,
            };
            page(state, &viewer, StatusCode::OK, &template)
        }
        Err(err) => actix_web::ResponseError::error_response(&err),
    }
}

async fn connect(viewer: Viewer, state: web::Data<AppState>) -> HttpResponse {
    render_connect(&state, viewer, None).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MintForm {
    csrf: String,
}

/// `POST /connect`: mints a token and shows the command on the page that answers (the
/// token goes in no address and no cookie).
async fn mint_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<MintForm>,
) -> HttpResponse {
    let viewer = match Viewer::of_form(&req, &state, &form.csrf) {
        Ok(viewer) => viewer,
        Err(refusal) => return refusal.response(),
    };
    match mint(&state).await {
        Ok(token) => {
            let minted = Some((token.command, token.expires_at.to_string()));
            render_connect(&state, viewer, minted).await
        }
        Err(err) => see_other_with(
            &state,
            "/connect",
            &Notice::problem(format!("Could not mint a token: {}", explain(err).0)),
        ),
    }
}
