# The demo package of "payment-entry", the robot step of the demo workflow
# "付款复核" (maker-checker): it runs only after the approvals the amount needs.
echo "entering a payment of ${RPA_ARG_AMOUNT}"
echo "::output {\"entered\": true}"
