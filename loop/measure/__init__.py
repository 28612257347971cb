"""Measure: prompt versions and their reviews in, figures out: did the last change help?

What enters: the Drafts tab's reviews, the prompt history and the applied edits. What leaves: the
Dashboard tab and `loop report` (each version's 👍 rate with its uncertainty, each applied edit's
effect), `loop status`, the webhook digest, and the weekly schedule that runs the loop on its own.

- `report`: the Dashboard; `proportions`: the few statistics of 👍 rates it needs, written out.
- `status`: what is pending, in one pass; `digest`: the few lines posted to a webhook.
- `schedule`: `loop schedule`, a GitHub Actions workflow, a crontab line or systemd units.
"""
