// The end-to-end load tool lands with the broker issue, when there is a broker to load.
Console.Error.WriteLine("SharedLog.LoadTest: not implemented yet.");
return 1;
