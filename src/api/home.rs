//! `home/index` and `swiperImgs`: what the mini-program's home page shows.

use actix_web::web;
use chrono::Utc;
use serde::Serialize;

use super::meeting::MeetingView;
use super::{ApiResult, AppState, ok};
use crate::domain::SwiperImage;

/// How many upcoming meetings the home page lists; the rest are one tap away in meeting/list.
pub(crate) const HOME_UPCOMING: i64 = 5;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SwiperImageView {
    pub(crate) id: i64,
    pub(crate) url: String,
    /// Where a tap leads (a mini-program page path), or empty.
    pub(crate) link: String,
}

impl From<SwiperImage> for SwiperImageView {
    fn from(s: SwiperImage) -> Self {
        SwiperImageView {
            id: s.id,
            url: s.url,
            link: s.link,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HomeIndex {
    pub(crate) swiper_imgs: Vec<SwiperImageView>,
    pub(crate) upcoming_meetings: Vec<MeetingView>,
}

/// `GET swiperImgs`: the enabled images, in display order.
pub(crate) async fn swiper_imgs(state: web::Data<AppState>) -> ApiResult {
    let images = state.db.swiper_images().await?;
    ok(images
        .into_iter()
        .map(SwiperImageView::from)
        .collect::<Vec<_>>())
}

/// `GET home/index`: the swiper and the next published meetings that have not started yet,
/// soonest first, in one answer so the home page needs one request.
pub(crate) async fn index(state: web::Data<AppState>) -> ApiResult {
    let home = state.db.home_page(Utc::now(), HOME_UPCOMING).await?;
    ok(HomeIndex {
        swiper_imgs: home
            .swiper_images
            .into_iter()
            .map(SwiperImageView::from)
            .collect(),
        upcoming_meetings: home.upcoming.into_iter().map(MeetingView::from).collect(),
    })
}
