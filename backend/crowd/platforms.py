"""Generic iframe hosts, Prolific, Appen and (legacy) MTurk."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from backend.crowd.base import CompletionAction, CrowdPlatform, Identity
from backend.errors import UserError

MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
MTURK_HOSTS = ("www.mturk.com", "workersandbox.mturk.com")


class GenericPlatform(CrowdPlatform):
    """Any iframe host: ``?worker=ID`` (optional ``crop=``); completion by ``postMessage``."""

    name = "generic"

    def identify(self, params: dict) -> Identity:
        worker = self.worker(params, "worker", "worker_id")
        return Identity(worker_id=worker, params={}, crop_id=self.crop(params))

    def completion(self, code, identity_params, settings):
        return CompletionAction(kind="post_message", code=code, show_code=True)


class ProlificPlatform(CrowdPlatform):
    """``PROLIFIC_PID``, ``STUDY_ID``, ``SESSION_ID``; completion redirects with the study's code."""

    name = "prolific"

    def identify(self, params: dict) -> Identity:
        worker = self.worker(params, "PROLIFIC_PID")
        kept = {k: params[k] for k in ("STUDY_ID", "SESSION_ID") if params.get(k)}
        return Identity(worker_id=worker, params=kept, crop_id=self.crop(params))

    def completion(self, code, identity_params, settings):
        study_code = settings.get("completion_code")
        if not study_code:
            raise UserError("this Prolific project has no completion_code in its platform settings")
        url = "https://app.prolific.com/submissions/complete?" + urlencode({"cc": study_code})
        return CompletionAction(kind="redirect", code=study_code, url=url)


class AppenPlatform(CrowdPlatform):
    """Per-row URLs (``crop=``, ``worker_id=``); a completion token is shown and posted to the parent."""

    name = "appen"

    def identify(self, params: dict) -> Identity:
        worker = self.worker(params, "worker_id", "worker")
        return Identity(worker_id=worker, params={k: params[k] for k in ("job_id", "unit_id") if params.get(k)},
                        crop_id=self.crop(params))

    def completion(self, code, identity_params, settings):
        return CompletionAction(kind="post_message", code=code, show_code=True)


class MTurkPlatform(CrowdPlatform):
    """Legacy ExternalQuestion HITs: preview is read-only; submit is a form POST to MTurk."""

    name = "mturk"

    def identify(self, params: dict) -> Identity:
        assignment = params.get("assignmentId", "")
        if assignment == MTURK_PREVIEW or not assignment:
            return Identity(worker_id="preview", preview=True, crop_id=self.crop(params))
        worker = self.worker(params, "workerId")
        submit_to = params.get("turkSubmitTo", "")
        host = urlsplit(submit_to).hostname if submit_to else None
        if urlsplit(submit_to).scheme != "https" or host not in MTURK_HOSTS:
            raise UserError("turkSubmitTo must be https://www.mturk.com or https://workersandbox.mturk.com",
                            field="turkSubmitTo")
        kept = {"assignmentId": assignment, "hitId": params.get("hitId", ""),
                "turkSubmitTo": f"https://{host}"}
        return Identity(worker_id=worker, params=kept, crop_id=self.crop(params))

    def completion(self, code, identity_params, settings):
        url = identity_params["turkSubmitTo"] + "/mturk/externalSubmit"
        return CompletionAction(kind="form_post", code=code, url=url,
                                fields={"assignmentId": identity_params["assignmentId"], "completion_code": code})


PLATFORMS: dict[str, CrowdPlatform] = {
    p.name: p for p in (GenericPlatform(), ProlificPlatform(), AppenPlatform(), MTurkPlatform())
}


def platform_for(name: str) -> CrowdPlatform:
    try:
        return PLATFORMS[name]
    except KeyError:
        raise UserError(f"unknown crowd platform {name!r}") from None
