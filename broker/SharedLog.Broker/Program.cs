// The broker process arrives with the single-node broker issue; until then this entry point only
// says so, rather than pretending to serve Kafka.
Console.Error.WriteLine("SharedLog broker: the Kafka listener is not implemented yet (see README, 'Status').");
return 1;
