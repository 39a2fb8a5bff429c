"""The code the live scheduler and the simulator share: calls, worker views, profiles and the cost
model, dispatch and queue policies. No Ray; the policy objects do no I/O and take time as an argument."""
