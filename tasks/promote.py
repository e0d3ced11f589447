from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from cryptorl.champion.promotion import Challenger, Decision
from cryptorl.champion.promotion import promote as promote_challengers
from cryptorl.champion.promotion_markdown import promotion_markdown
from cryptorl.storage import ArtifactStore

PROMOTION_KEY = "promotion"
EVENT_PREFIX = "cryptorl.promotion"  # .accepted / .rejected / .retired: what users hang automations on


@task(cache_policy=NO_CACHE)  # a decision depends on the registry's current champion: never reuse one
def promote(store_url: str, challengers: list[Challenger]) -> Decision:
    """Promote the best healthy seed of a segment run that clears the floor if it beats the champion, or retire a
    champion below the floor; the `promotion` artifact and event.

    The event `cryptorl.promotion.accepted` / `.rejected` / `.retired` is about the resource
    `cryptorl.registry.<dataset>` and carries the decision's numbers in its payload.
    """
    decision = promote_challengers(ArtifactStore(store_url), challengers)
    create_markdown_artifact(
        key=PROMOTION_KEY, markdown=promotion_markdown(decision), description=f"{decision.outcome}: {decision.reason}"
    )
    emit_event(
        event=f"{EVENT_PREFIX}.{decision.outcome}",
        payload=decision.to_json(),
        resource={
            "prefect.resource.id": f"cryptorl.registry.{decision.dataset}",
            "prefect.resource.name": decision.dataset,
        },
    )
    return decision
