#   pond up --config cli/mesh.zpl: the mesh pond up runs by default.
#   Each process gets "--data DIR" first, then its args (split on blanks);
#   it is ready once DIR/READY exists and names its pid (default READY:
#   NAME.zpl; "" = ready when started). A process section replaces the
#   whole built-in list; processes start in this order and stop in the
#   reverse one. Unknown keys are errors.
process
    store
        command = "pond-store"
    broker
        command = "pond-broker"
    quack-counter
        command = "pond-quack-counter"
    badge-granter
        command = "pond-badge-granter"
    alexa-view
        command = "pond-alexa-view"
    mobile-view
        command = "pond-mobile-view"
    gateway
        command = "pond-gateway"
supervisor
    ready_timeout_ms = 60000
    stop_timeout_ms = 5000
    backoff_min_ms = 100
    backoff_max_ms = 5000
    stable_ms = 30000
    start_attempts = 3
