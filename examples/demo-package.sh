# The demo package of "Invoice entry" (installed when the server runs its
# demo configuration): examples/robot runs it with the job's arguments as
# RPA_ARG_<NAME> variables; each line it prints is a run log line.
echo "entering invoice ${RPA_ARG_INVOICE} for ${RPA_ARG_CUSTOMER:-a customer not named}"
echo "::step 1 open the invoice form"
echo "::step 2 save invoice ${RPA_ARG_INVOICE}"
echo "::output {\"invoice\": \"${RPA_ARG_INVOICE}\", \"entered\": true}"
