// @generated to match `diesel print-schema` for the migrations in /migrations.

diesel::table! {
    wx_user (id) {
        id -> Int8,
        #[max_length = 63]
        username -> Varchar,
        #[max_length = 64]
        nickname -> Varchar,
        #[max_length = 512]
        avatar -> Varchar,
        gender -> Int2,
        #[max_length = 20]
        mobile -> Varchar,
        #[max_length = 128]
        weixin_openid -> Varchar,
        #[max_length = 128]
        unionid -> Nullable<Varchar>,
        user_level -> Int2,
        status -> Int2,
        last_login_time -> Nullable<Timestamptz>,
        #[max_length = 63]
        last_login_ip -> Varchar,
        share_user_id -> Nullable<Int8>,
        add_time -> Timestamptz,
        update_time -> Timestamptz,
        deleted -> Bool,
    }
}

diesel::table! {
    login_log (id) {
        id -> Int8,
        user_id -> Nullable<Int8>,
        #[max_length = 16]
        openid_masked -> Varchar,
        #[max_length = 63]
        ip -> Varchar,
        #[max_length = 256]
        user_agent -> Varchar,
        errno -> Int4,
        add_time -> Timestamptz,
    }
}

diesel::joinable!(login_log -> wx_user (user_id));

diesel::allow_tables_to_appear_in_same_query!(login_log, wx_user,);
