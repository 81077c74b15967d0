# Shared by io/fetch-*.sh (sourced): download files, check sha256, install them
# only when every one verifies (rename within the destination folder).
#   fetch_verified BASE_URL DEST_DIR NAME=SHA256 [NAME=SHA256 ...]
fetch_verified() {
  local base=$1 dest=$2; shift 2
  command -v curl >/dev/null || { echo "fetch: curl is needed (apt-get install curl)" >&2; return 1; }
  mkdir -p "$dest" || return 1
  local tmp; tmp=$(mktemp -d "$dest/.fetch.XXXXXX") || return 1
  local pair f sum
  for pair in "$@"; do
    f=${pair%%=*}; sum=${pair#*=}
    if [ -f "$dest/$f" ] && echo "$sum  $dest/$f" | sha256sum -c --quiet - >/dev/null 2>&1; then
      echo "fetch: $f already present and verified"
      continue
    fi
    echo "fetch: downloading $f"
    if ! curl -fsSL --retry 3 -o "$tmp/$f" "$base/$f"; then
      echo "fetch: download of $f from $base failed" >&2; rm -rf "$tmp"; return 1
    fi
    if ! echo "$sum  $tmp/$f" | sha256sum -c --quiet - >/dev/null 2>&1; then
      echo "fetch: $f has the wrong sha256 (expected $sum); nothing installed" >&2; rm -rf "$tmp"; return 1
    fi
  done
  for pair in "$@"; do
    f=${pair%%=*}
    [ -f "$tmp/$f" ] && mv -f "$tmp/$f" "$dest/$f"
  done
  rm -rf "$tmp"
  echo "fetch: ready in $dest"
}
