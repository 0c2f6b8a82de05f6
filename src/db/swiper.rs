//! Queries on the home page's swiper images.

use diesel::prelude::*;

use super::DbError;
use super::models::SwiperImageRow;
use super::schema::swiper_image;
use crate::domain::SwiperImage;

/// The enabled images in display order.
pub(crate) fn enabled(conn: &mut PgConnection) -> Result<Vec<SwiperImage>, DbError> {
    // `filter(enabled)` rather than `enabled.eq(true)`: a bound `true` would keep the planner from
    // matching the partial index `WHERE enabled`.
    Ok(swiper_image::table
        .filter(swiper_image::enabled)
        .order((swiper_image::sort_order.asc(), swiper_image::id.asc()))
        .select(SwiperImageRow::as_select())
        .load::<SwiperImageRow>(conn)?
        .into_iter()
        .map(SwiperImage::from)
        .collect())
}
