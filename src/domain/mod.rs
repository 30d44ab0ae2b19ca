//! Types that validate on parse and the business rules as pure functions.
//! Nothing in here does I/O.

#![warn(missing_docs)]

mod distance;
mod download;
mod email;
mod ids;
mod lang;
mod message_id;
mod order;
mod rules;
mod text;
mod validate;

pub use distance::edit_distance;
pub use download::{
    DownloadRefusal, DownloadRule, FIRST_REVIEW_BUSINESS_DAYS, FURTHER_REVIEW_BUSINESS_DAYS,
    PolicyInput, decide as decide_download, second_download_deadline, strictest,
};
pub use email::{AddressError, EmailAddress, Mailbox, is_own_domain, parse_address_list};
pub use ids::{IdError, OrderId, PoNumber};
pub use lang::{Lang, ParseLangError};
pub use message_id::{MessageId, MessageIdError};
pub use order::{Hold, HoldType, Image, Order, OrderLine, Recipient};
pub use rules::{
    ARCHIVE_AFTER_MONTHS, SECOND_DOWNLOAD_DAYS, Team, add_business_days, archive_due,
    is_business_day, team_for_hold, team_for_pid,
};
pub use text::{
    CodePoint, TextError, check_invisible, check_text, clip, fold, fold_ascii, fold_pattern,
    forbidden_name,
};
pub use validate::{FieldError, OrderRejection, parse_order};
