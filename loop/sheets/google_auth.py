"""Google credentials: a service-account key, a person's own account (`loop auth`), or the
application default credentials, in that order."""

from __future__ import annotations

import json
import os
from pathlib import Path

from loop import files
from loop.errors import UsageError

SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]


def token_file() -> Path:
    """Where `loop auth` keeps a person's OAuth token."""
    configured = os.environ.get("LOOP_GOOGLE_TOKEN")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "loop" / "google-token.json"


def load_credentials(credentials_file: str | None = None):
    """Credentials for the Sheets API, or a UsageError that says how to provide them."""
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    path = credentials_file or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if path:
        try:
            info = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"No credentials file at {path}; check GOOGLE_APPLICATION_CREDENTIALS or --credentials.") from None
        except (ValueError, OSError) as error:
            raise UsageError(f"{path} is not a JSON key file ({error}); download the key again (README: Google Sheets).") from None
        kind = info.get("type") if isinstance(info, dict) else None
        try:
            if kind == "service_account":
                return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
            if kind == "authorized_user":
                return user_credentials.Credentials.from_authorized_user_info(info, SCOPES)
        except ValueError as error:
            raise UsageError(f"{path} is an incomplete {kind} key ({error}); download it again.") from None
        raise UsageError(f"{path} is neither a service-account key nor a user token; see README: Google Sheets.")
    token = token_file()
    if token.exists():
        return user_credentials.Credentials.from_authorized_user_file(str(token), SCOPES)
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        found, _ = google.auth.default(scopes=SCOPES)
    except DefaultCredentialsError:
        raise UsageError(
            "No Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, "
            "or run `loop auth` (README: Google Sheets)."
        ) from None
    return found


def authorize(client_secret_file: str) -> Path:
    """Run the OAuth consent flow in a browser and keep the person's token for later commands."""
    from gspread.auth import local_server_flow

    try:
        client_config = json.loads(Path(client_secret_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"Cannot read the OAuth client file {client_secret_file} ({error}); see README: Google Sheets.") from None
    sections = client_config if isinstance(client_config, dict) else {}
    kind = next((k for k in ("installed", "web") if isinstance(sections.get(k), dict)), None)
    missing = [key for key in ("client_id", "client_secret", "auth_uri", "token_uri")
               if not kind or not client_config[kind].get(key)]
    if missing:
        raise UsageError(f"{client_secret_file} is not an OAuth client file (no {', '.join(missing)}); download it "
                         "again from Google Cloud: Credentials → OAuth client ID → Desktop app.")
    try:
        credentials = local_server_flow(client_config, SCOPES)
    except ValueError as error:
        raise UsageError(f"Google sign-in failed ({error}); download the OAuth client file again and retry.") from None
    target = token_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    # a secret: readable by its owner only (the one file that should be 0600)
    target.touch(mode=0o600, exist_ok=True)
    target.chmod(0o600)
    files.write_text(target, credentials.to_json())
    return target


def account_email(credentials) -> str | None:
    return getattr(credentials, "service_account_email", None)
