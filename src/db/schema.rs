// @generated to match `diesel print-schema` for the migrations in /migrations.

diesel::table! {
    account_deletion (id) {
        id -> Int8,
        user_id -> Nullable<Int8>,
        requested_at -> Timestamptz,
        due_at -> Timestamptz,
        prior_status -> Int2,
        completed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    meeting (id) {
        id -> Int8,
        #[max_length = 100]
        title -> Varchar,
        content -> Text,
        #[max_length = 100]
        location -> Varchar,
        start_time -> Timestamptz,
        end_time -> Timestamptz,
        publisher_id -> Int8,
        state -> Int2,
        #[max_length = 512]
        cover -> Varchar,
        add_time -> Timestamptz,
        update_time -> Timestamptz,
        review_state -> Int2,
    }
}

diesel::table! {
    meeting_member (meeting_id, user_id) {
        meeting_id -> Int8,
        user_id -> Int8,
        join_time -> Timestamptz,
    }
}

diesel::table! {
    meeting_reminder (meeting_id, user_id) {
        meeting_id -> Int8,
        user_id -> Int8,
        #[max_length = 128]
        template_id -> Varchar,
        status -> Int2,
        consented_at -> Timestamptz,
        claimed_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        #[max_length = 64]
        app_id -> Varchar,
    }
}

diesel::table! {
    swiper_image (id) {
        id -> Int8,
        #[max_length = 512]
        url -> Varchar,
        #[max_length = 512]
        link -> Varchar,
        sort_order -> Int4,
        enabled -> Bool,
        add_time -> Timestamptz,
        update_time -> Timestamptz,
    }
}

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
    user_session (id) {
        #[max_length = 64]
        id -> Varchar,
        user_id -> Int8,
        session_key_enc -> Bytea,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        #[max_length = 63]
        client_ip -> Varchar,
        #[max_length = 255]
        user_agent -> Varchar,
        #[max_length = 64]
        app_id -> Varchar,
    }
}

diesel::table! {
    account_merge (id) {
        id -> Int8,
        survivor_id -> Nullable<Int8>,
        merged_id -> Int8,
        #[max_length = 16]
        reason -> Varchar,
        merged_at -> Timestamptz,
    }
}

diesel::table! {
    user_identity (id) {
        id -> Int8,
        user_id -> Int8,
        kind -> Int2,
        #[max_length = 64]
        app_id -> Varchar,
        #[max_length = 128]
        subject -> Varchar,
        #[max_length = 128]
        unionid -> Nullable<Varchar>,
        add_time -> Timestamptz,
        last_login_time -> Nullable<Timestamptz>,
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
        #[max_length = 64]
        app_id -> Varchar,
    }
}

diesel::joinable!(account_deletion -> wx_user (user_id));
diesel::joinable!(login_log -> wx_user (user_id));
diesel::joinable!(user_session -> wx_user (user_id));
diesel::joinable!(user_identity -> wx_user (user_id));
diesel::joinable!(account_merge -> wx_user (survivor_id));
diesel::joinable!(meeting -> wx_user (publisher_id));
diesel::joinable!(meeting_member -> meeting (meeting_id));
diesel::joinable!(meeting_member -> wx_user (user_id));
diesel::joinable!(meeting_reminder -> meeting (meeting_id));
diesel::joinable!(meeting_reminder -> wx_user (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    account_deletion,
    account_merge,
    login_log,
    meeting,
    meeting_member,
    meeting_reminder,
    swiper_image,
    user_identity,
    user_session,
    wx_user,
);
