from workfleet_common.topology import DELIVERY_LIMIT, Topology


def test_quorum_queue_dead_letters_into_its_own_exchange():
    topology = Topology("jobs")
    assert topology.dead_letter_exchange == "jobs.dlx"
    assert topology.dead_letter_queue == "jobs.dlq"
    assert topology.work_queue_arguments() == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "jobs.dlx",
        "x-dead-letter-routing-key": "jobs",
        "x-delivery-limit": DELIVERY_LIMIT,
    }


def test_classic_queue_is_declared_as_the_tutorial_does():
    assert Topology("task_queue", "classic").work_queue_arguments() == {}
