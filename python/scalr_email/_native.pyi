# Internal C layer (python/src/_scalr_email.c); use the scalr_email API instead.
from typing import Any, Dict, List, Optional, Tuple

LIBRARY_VERSION: str

# (code, smtp_code, enhanced, stage, recipient, server_text, message, message_id)
_Result = Tuple[str, int, str, str, str, str, str, str]
_Att = Tuple[Optional[bytes], Optional[bytes], Optional[str], Optional[str]]  # [, content_id]
# (calendar, envelope_from, dsn_notify, dsn_ret, dsn_envid)
_Opts = Optional[Tuple[Optional[str], Optional[str], Optional[str], Optional[str], Optional[str]]]

def send(to: Optional[Tuple[str, ...]], subject: Optional[str], body: Optional[str],
         body_html: Optional[str], sender: Optional[str], cc: Optional[Tuple[str, ...]],
         bcc: Optional[Tuple[str, ...]], reply_to: Optional[str],
         headers: Optional[Tuple[Tuple[str, str], ...]],
         attachments: Optional[Tuple[_Att, ...]], options: _Opts = ..., *,
         check_body_nul: bool = ..., profile: Optional[str] = ...,
         config: Optional[Tuple[Optional[str], int, Optional[str], Optional[str], Optional[str],
                                str, int]] = ...) -> _Result: ...
def compose(to: Optional[Tuple[str, ...]], subject: Optional[str], body: Optional[str],
            body_html: Optional[str], sender: Optional[str], cc: Optional[Tuple[str, ...]],
            bcc: Optional[Tuple[str, ...]], reply_to: Optional[str],
            headers: Optional[Tuple[Tuple[str, str], ...]],
            attachments: Optional[Tuple[_Att, ...]], options: _Opts = ..., *,
            default_from: Optional[str] = ...,
            profile: Optional[str] = ...) -> Tuple[_Result, Optional[bytes]]: ...
def strerror(code: str) -> str: ...
def render(name: str, data_json: bytes, locale: Optional[str], root: Optional[str],
           allow_missing: bool) -> Tuple[_Result, Optional[str], Optional[str], Optional[str]]: ...
def envelope(to: Optional[Tuple[str, ...]], subject: Optional[str], body: Optional[str],
             body_html: Optional[str], sender: Optional[str], cc: Optional[Tuple[str, ...]],
             bcc: Optional[Tuple[str, ...]], reply_to: Optional[str],
             headers: Optional[Tuple[Tuple[str, str], ...]],
             attachments: Optional[Tuple[_Att, ...]], options: _Opts = ..., *, default_from: Optional[str] = ...
             ) -> Tuple[_Result, Optional[bytes], Optional[str], Optional[str],
                        Optional[Tuple[str, ...]]]: ...
def enqueue(to: Optional[Tuple[str, ...]], subject: Optional[str], body: Optional[str],
            body_html: Optional[str], sender: Optional[str], cc: Optional[Tuple[str, ...]],
            bcc: Optional[Tuple[str, ...]], reply_to: Optional[str],
            headers: Optional[Tuple[Tuple[str, str], ...]],
            attachments: Optional[Tuple[_Att, ...]], options: _Opts = ..., *, default_from: Optional[str] = ...,
            queue: Optional[str] = ..., send_at_ms: Optional[int] = ..., lane: int = ...,
            tenant: Optional[str] = ..., key: Optional[str] = ...,
            expire_in_ms: Optional[int] = ..., max_attempts: Optional[int] = ...,
            profile: Optional[str] = ...
            ) -> Tuple[_Result, Optional[int], int]: ...
def queue_init(url: str) -> _Result: ...
def queue_status(queue: Optional[str] = ...) -> Tuple[_Result, Optional[Dict[str, Any]]]: ...
def queue_show(queue_id: int, queue: Optional[str] = ...
               ) -> Tuple[_Result, Optional[Dict[str, Any]], Optional[List[Dict[str, Any]]]]: ...
