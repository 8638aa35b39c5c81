#!/usr/bin/env bash
# The step of the composite action that runs reconciler (action.yml beside this file). The
# inputs arrive as INPUT_* environment variables, never pasted into the script.
#
#   validate  offline checks; every problem becomes an annotation on the file and line.
#   plan      validate, then plan --format markdown --out PLAN_FILE --markdown-dir DIR: the parts
#             in DIR (each starting with <!-- reconciler-plan:part-N -->) are the PR comments;
#             on invalid manifests part-1.md holds the diagnostics. Without a tenant (a pull
#             request from a fork gets no variables or secrets) it only validates.
#   apply     apply; the report goes to the job summary, the state file is written.
#   drift     drift --format markdown --report FILE; exit 2 (drift found) is not a failure.
#
# Outputs: reconciler writes has_changes, parts, plan_path, failed, drifted and report_path to
# $GITHUB_OUTPUT itself; this script adds exit_code and markdown_dir. It fails (exit 1) when the
# command failed, unless INPUT_FAIL_ON_ERROR is false.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command=${INPUT_COMMAND:-}
temp=${RUNNER_TEMP:-${TMPDIR:-/tmp}}
output=${GITHUB_OUTPUT:-/dev/null}
summary=${GITHUB_STEP_SUMMARY:-/dev/null}

# Space-separated lists; read -a neither globs nor runs anything.
read -r -d '' -a paths <<<"${INPUT_PATHS:-specs/}" || true
read -r -d '' -a extra <<<"${INPUT_ARGS:-}" || true
read -r -d '' -a var_files <<<"${INPUT_VAR_FILES:-}" || true
common=()
for file in "${var_files[@]}"; do
  common+=(--var-file "$file")
done
secrets_flag=()
if [ "${INPUT_ALLOW_MISSING_SECRETS:-false}" = true ]; then
  secrets_flag=(--allow-missing-secrets)
fi

# The tenant: the inputs win over the job's environment.
if [ -n "${INPUT_BASE_URL:-}" ]; then
  export ATLAN_BASE_URL="$INPUT_BASE_URL"
fi
if [ -n "${INPUT_API_KEY:-}" ]; then
  export ATLAN_API_KEY="$INPUT_API_KEY"
fi
unset INPUT_API_KEY
# A password in the URL's user-info is a secret the runner does not know about.
authority=${ATLAN_BASE_URL:-}
authority=${authority#*://}
authority=${authority%%/*}
if [[ $authority == *@* ]]; then
  userinfo=${authority%@*}
  echo "::add-mask::${userinfo#*:}"
fi
# GitHub sets a secret that does not exist to "": reconciler would take "" as its value. Unset
# empty variables, so that a missing secret is reported as missing (RC050) instead.
for name in $(compgen -e); do
  if [ -z "${!name}" ]; then
    unset "$name" 2>/dev/null || true
  fi
done

has_tenant() {
  [ -n "${ATLAN_BASE_URL:-}" ] || [[ " ${extra[*]} " == *" --base-url"* ]]
}

no_tenant() {
  echo "::error title=reconciler $command::no tenant: set the base-url input (for example \${{ vars.ATLAN_BASE_URL }}) and api-key (\${{ secrets.ATLAN_API_KEY }})"
}

# validate --format json, shown as annotations; returns validate's exit code.
validate() {
  local json="$temp/reconciler-validate.json" status=0
  reconciler validate "${paths[@]}" --format json "${common[@]}" "${secrets_flag[@]}" >"$json" || status=$?
  python3 "$here/annotate.py" "$json"
  return "$status"
}

status=0
case "$command" in
  validate)
    validate || status=$?
    ;;
  plan)
    valid=0
    validate || valid=$?
    status=$valid
    if has_tenant; then
      # Planned even when validation failed: part-1.md then shows the diagnostics, and nothing
      # is sent to the tenant.
      markdown_dir="$temp/reconciler-plan"
      echo "markdown_dir=$markdown_dir" >>"$output"
      status=0
      reconciler plan "${paths[@]}" --format markdown --out "${INPUT_PLAN_FILE:-plan.json}" --markdown-dir "$markdown_dir" \
        "${common[@]}" "${secrets_flag[@]}" "${extra[@]}" || status=$?
      if [ "$valid" -ne 0 ] && [ "$status" -ne 1 ]; then
        status=$valid
      fi
    else
      echo "::notice title=reconciler plan::no tenant for this job (a pull request from a fork gets no variables or secrets): the manifests were validated, not planned"
      {
        echo "### reconciler plan"
        echo
        echo "No tenant for this job: the manifests were validated offline (exit $status), not planned."
      } >>"$summary"
    fi
    ;;
  apply)
    if has_tenant; then
      reconciler apply "${paths[@]}" "${common[@]}" "${extra[@]}" || status=$?
    else
      no_tenant
      status=64
    fi
    ;;
  drift)
    if has_tenant; then
      reconciler drift "${paths[@]}" --format markdown --report "$temp/reconciler-drift.md" \
        "${common[@]}" "${secrets_flag[@]}" "${extra[@]}" || status=$?
    else
      no_tenant
      status=64
    fi
    ;;
  *)
    echo "::error title=reconciler::unknown command '$command': use validate, plan, apply or drift"
    status=64
    ;;
esac

echo "exit_code=$status" >>"$output"
case "$command:$status" in
  validate:0 | plan:0 | plan:2 | apply:0 | drift:0 | drift:2) ;;
  *)
    echo "::error title=reconciler $command::reconciler $command exited $status (1: error, 64: usage); see the log above"
    if [ "${INPUT_FAIL_ON_ERROR:-true}" != false ]; then
      exit 1
    fi
    ;;
esac
