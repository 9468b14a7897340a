"""Lab 05, part 1: a Kubernetes rolling update rehearsed on this machine with real uWSGI
and nginx processes (workshop.rollout.rehearsal), read from the lab's Deployment
(workshop.rollout.manifest), rendered per pod (workshop.rollout.render) and recorded
request by request (workshop.rollout.timeline)."""
