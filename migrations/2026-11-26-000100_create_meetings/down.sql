DROP TABLE swiper_image;
DROP TABLE meeting_member;
DROP TABLE meeting;
